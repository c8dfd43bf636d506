-- Evidence retention: when the purge job deleted an incident's snapshot and clip (personal data), so
-- the incident itself says its evidence is gone rather than missing.

ALTER TABLE incidents ADD COLUMN evidence_purged_at timestamptz;
CREATE INDEX incidents_evidence_kept ON incidents (started_at) WHERE evidence_purged_at IS NULL;
