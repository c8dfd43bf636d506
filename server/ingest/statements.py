"""SQL of the batch writer, as constant strings (rows go in as arrays through ``unnest``)."""

from __future__ import annotations

from typing import LiteralString

PROCESSED: LiteralString = """
INSERT INTO processed_messages (msg_id, kind, camera_id)
SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[])
ON CONFLICT (msg_id) DO NOTHING
RETURNING msg_id
"""

BINS_ROWS: LiteralString = """
WITH ins AS (
    INSERT INTO count_bins (camera_id, bin_start, bin_end, msg_id, seq, frames, fps, health_mask, total)
    SELECT * FROM unnest(%(cam)b::text[], %(start)b::timestamptz[], %(end)b::timestamptz[],
                         %(msg)b::uuid[], %(seq)b::bigint[], %(frames)b::int[], %(fps)b::real[],
                         %(mask)b::int[], %(total)b::bigint[])
    ON CONFLICT (camera_id, bin_start) DO NOTHING
    RETURNING camera_id, bin_start, bin_end, frames, fps, health_mask, total
)
"""
BINS_ROLLUP_TEMPLATE: LiteralString = """
, r{g} AS (
    INSERT INTO count_bins_{g} (camera_id, bucket, n_bins, covered_s, frames, min_fps, health_mask, total)
    SELECT camera_id, {bucket}, count(*), sum(extract(epoch FROM bin_end - bin_start)), sum(frames),
           min(fps), bit_or(health_mask), sum(total)
    FROM ins GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (camera_id, bucket) DO UPDATE SET
        total = count_bins_{g}.total + excluded.total,
        n_bins = count_bins_{g}.n_bins + excluded.n_bins,
        covered_s = count_bins_{g}.covered_s + excluded.covered_s,
        frames = count_bins_{g}.frames + excluded.frames,
        min_fps = least(count_bins_{g}.min_fps, excluded.min_fps),
        health_mask = count_bins_{g}.health_mask | excluded.health_mask
    RETURNING 1
)
"""
COUNTS_ROWS: LiteralString = """
WITH ins AS (
    INSERT INTO counts (camera_id, bin_start, line_id, direction, cls, count)
    SELECT * FROM unnest(%(cam)b::text[], %(start)b::timestamptz[], %(line)b::text[], %(dir)b::text[],
                         %(cls)b::text[], %(n)b::int[])
    RETURNING camera_id, bin_start, line_id, direction, cls, count
)
"""
COUNTS_ROLLUP_TEMPLATE: LiteralString = """
, r{g} AS (
    INSERT INTO counts_{g} (camera_id, bucket, line_id, direction, cls, count)
    SELECT camera_id, {bucket}, line_id, direction, cls, sum(count)
    FROM ins GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (camera_id, bucket, line_id, direction, cls) DO UPDATE SET
        count = counts_{g}.count + excluded.count
    RETURNING 1
)
"""
#: Bucket expressions shared with the history queries (``server.api.queries``) and TimescaleDB.
BUCKETS: dict[str, LiteralString] = {
    "15m": "date_bin('15 minutes', bin_start, timestamptz '2000-01-01 00:00:00+00')",
    "1h": "date_trunc('hour', bin_start, %(tz)s)",
    "1d": "date_trunc('day', bin_start, %(tz)s)",
}


def _with_rollups(head: LiteralString, template: LiteralString, tail: LiteralString) -> LiteralString:
    out = head
    for g, bucket in BUCKETS.items():
        # str.replace keeps LiteralString-ness for literal arguments.
        out = out + template.replace("{g}", g).replace("{bucket}", bucket)
    return out + tail


BINS_PLAIN = _with_rollups(BINS_ROWS, BINS_ROLLUP_TEMPLATE, "SELECT camera_id, bin_start FROM ins")
BINS_TIMESCALE: LiteralString = BINS_ROWS + "SELECT camera_id, bin_start FROM ins"  # noqa: S608
COUNTS_PLAIN = _with_rollups(COUNTS_ROWS, COUNTS_ROLLUP_TEMPLATE, "SELECT count(*) FROM ins")
COUNTS_TIMESCALE: LiteralString = COUNTS_ROWS + "SELECT count(*) FROM ins"  # noqa: S608

# The count cells go in with COPY (text format, built by the writer): far cheaper on the client than
# arrays, whose elements psycopg dumps one by one. TimescaleDB: straight into the hypertable. Plain
# PostgreSQL: into a per-connection staging table, merged with the rollups in one set-based statement.
COPY_COUNTS: LiteralString = "COPY counts (camera_id, bin_start, line_id, direction, cls, count) FROM STDIN"
STAGE_COUNTS_CREATE: LiteralString = """
CREATE TEMP TABLE IF NOT EXISTS stage_counts (LIKE counts) ON COMMIT DELETE ROWS
"""
COPY_STAGE_COUNTS: LiteralString = (
    "COPY stage_counts (camera_id, bin_start, line_id, direction, cls, count) FROM STDIN"
)
COUNTS_STAGE_ROWS: LiteralString = """
WITH ins AS (
    INSERT INTO counts (camera_id, bin_start, line_id, direction, cls, count)
    SELECT camera_id, bin_start, line_id, direction, cls, count FROM stage_counts
    RETURNING camera_id, bin_start, line_id, direction, cls, count
)
"""
COUNTS_MERGE_PLAIN = _with_rollups(COUNTS_STAGE_ROWS, COUNTS_ROLLUP_TEMPLATE, "SELECT count(*) FROM ins")

ZONES: LiteralString = """
INSERT INTO zone_occupancy (camera_id, bin_start, zone_id, cls, mean_count, max_count, entries, mean_dwell_s)
SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::real[], %b::int[],
                     %b::int[], %b::real[])
ON CONFLICT DO NOTHING
"""
SPEEDS: LiteralString = """
INSERT INTO speeds (camera_id, bin_start, line_id, direction, cls, n, mean_kmh, p85_kmh)
SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::int[],
                     %b::real[], %b::real[])
ON CONFLICT DO NOTHING
"""
MOVEMENTS: LiteralString = """
INSERT INTO movements (camera_id, bin_start, junction_id, from_line, to_line, cls, count)
SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[],
                     %b::int[])
ON CONFLICT DO NOTHING
"""
STATUS: LiteralString = """
INSERT INTO camera_status (camera_id, ts, msg_id, edge_id, seq, state, reason, health)
SELECT c, t, m, e, s, st, r, string_to_array(h, ',')
FROM unnest(%b::text[], %b::timestamptz[], %b::uuid[], %b::text[], %b::bigint[], %b::text[], %b::text[],
            %b::text[]) AS u(c, t, m, e, s, st, r, h)
"""
HEARTBEATS: LiteralString = """
INSERT INTO heartbeats (camera_id, ts, msg_id, edge_id, seq, fps, source_fps, inference_ms, dropped_frames,
                        outbox_depth, uptime_s, reconnects, health, version)
SELECT c, t, m, e, s, f, sf, im, df, ob, up, rc, string_to_array(h, ','), v
FROM unnest(%b::text[], %b::timestamptz[], %b::uuid[], %b::text[], %b::bigint[], %b::real[], %b::real[],
            %b::real[], %b::bigint[], %b::int[], %b::float8[], %b::int[], %b::text[], %b::text[])
     AS u(c, t, m, e, s, f, sf, im, df, ob, up, rc, h, v)
"""
DEAD: LiteralString = """
INSERT INTO dead_letters (topic, reason, detail, camera_id, msg_id, payload_size, payload)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::int[], %b::bytea[])
"""
LIVE_STATUS: LiteralString = """
INSERT INTO camera_live AS l (camera_id, state, state_reason, state_health, state_at, last_seen_at)
SELECT c, st, r, string_to_array(h, ','), t, t
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[]) AS u(c, st, r, h, t)
ON CONFLICT (camera_id) DO UPDATE SET
    state = excluded.state, state_reason = excluded.state_reason, state_health = excluded.state_health,
    state_at = excluded.state_at, last_seen_at = greatest(l.last_seen_at, excluded.last_seen_at)
WHERE l.state_at IS NULL OR excluded.state_at >= l.state_at
"""
LIVE_SEEN: LiteralString = """
INSERT INTO camera_live AS l (camera_id, last_seen_at, last_counts_bin, last_counts, last_heartbeat)
SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[], %b::jsonb[], %b::jsonb[])
ON CONFLICT (camera_id) DO UPDATE SET
    last_seen_at = greatest(l.last_seen_at, excluded.last_seen_at),
    last_counts_bin = CASE WHEN excluded.last_counts_bin >= coalesce(l.last_counts_bin, '-infinity')
                           THEN excluded.last_counts_bin ELSE l.last_counts_bin END,
    last_counts = CASE WHEN excluded.last_counts_bin >= coalesce(l.last_counts_bin, '-infinity')
                       THEN excluded.last_counts ELSE l.last_counts END,
    last_heartbeat = coalesce(excluded.last_heartbeat, l.last_heartbeat)
"""
CLIP: LiteralString = """
INSERT INTO incident_clips (incident_id, camera_id, content_type, codec, width, height, frames, duration_s,
    clip_start, bytes, path, data)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (incident_id) DO NOTHING
"""
SNAPSHOT: LiteralString = """
INSERT INTO snapshots (incident_id, content_type, width, height, path, data)
VALUES (%s, %s, %s, %s, %s, %s) RETURNING id
"""
INCIDENT: LiteralString = """
INSERT INTO incidents AS i (incident_id, camera_id, type, severity, rule_id, zone_id, line_id, state,
    started_at, ended_at, latitude, longitude, summary, classes, track_ids, details, snapshot_id,
    last_event_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (incident_id) DO UPDATE SET
    state = CASE WHEN i.state = 'closed' OR excluded.state = 'closed' THEN 'closed' ELSE 'open' END,
    started_at = least(i.started_at, excluded.started_at),
    ended_at = coalesce(i.ended_at, excluded.ended_at),
    severity = CASE WHEN excluded.last_event_at >= i.last_event_at THEN excluded.severity ELSE i.severity END,
    summary = CASE WHEN excluded.last_event_at >= i.last_event_at THEN excluded.summary ELSE i.summary END,
    details = CASE WHEN excluded.last_event_at >= i.last_event_at THEN excluded.details ELSE i.details END,
    classes = ARRAY(SELECT DISTINCT x FROM unnest(i.classes || excluded.classes) AS x ORDER BY x),
    track_ids = ARRAY(SELECT DISTINCT x FROM unnest(i.track_ids || excluded.track_ids) AS x ORDER BY x),
    latitude = coalesce(excluded.latitude, i.latitude),
    longitude = coalesce(excluded.longitude, i.longitude),
    snapshot_id = coalesce(i.snapshot_id, excluded.snapshot_id),
    last_event_at = greatest(i.last_event_at, excluded.last_event_at)
WHERE i.camera_id = excluded.camera_id
RETURNING incident_id
"""
#: The camera that owns an incident (its first message's); an edge may only change its own cameras'
#: incidents (the broker ACL binds each camera's topics to one edge credential).
INCIDENT_OWNER: LiteralString = "SELECT camera_id FROM incidents WHERE incident_id = %s FOR UPDATE"
INCIDENT_EVENT: LiteralString = """
INSERT INTO incident_events (msg_id, incident_id, camera_id, event, ts, severity, summary, track_ids, details)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
"""
SEQ_LOCK: LiteralString = """
INSERT INTO camera_seq (camera_id, max_seq) SELECT unnest(%b::text[]), -1 ON CONFLICT DO NOTHING
"""
SEQ_SELECT: LiteralString = """
SELECT camera_id, max_seq FROM camera_seq WHERE camera_id = ANY(%s) ORDER BY camera_id FOR UPDATE
"""
GAPS_SELECT: LiteralString = """
SELECT id, camera_id, first_seq, last_seq, opened_at FROM seq_gaps
WHERE camera_id = ANY(%s) AND closed_at IS NULL ORDER BY first_seq
"""
SEQ_UPDATE: LiteralString = """
UPDATE camera_seq AS s SET max_seq = u.m, updated_at = now()
FROM unnest(%b::text[], %b::bigint[]) AS u(c, m)
WHERE s.camera_id = u.c
"""
