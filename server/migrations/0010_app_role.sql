-- The application role, and a per-row algorithm for the audit chain (issue 12, item 6).
--
-- Migrations run as the schema owner (CITYWATCH_MIGRATE_DATABASE_URL); the server's queries run as a
-- login role that is a member of citywatch_app (server/db/roles.py provisions it). That role may read
-- and write the data tables but only INSERT and SELECT audit_log: no UPDATE, DELETE or TRUNCATE, and,
-- not being the owner, it cannot drop or disable the append-only triggers either.

-- SLA reports select incidents by camera and arrival time.
CREATE INDEX incidents_received ON incidents (camera_id, received_at);

-- sha256: the chain of before a key was configured; hmac-sha256: keyed with CITYWATCH_AUDIT_KEY.
ALTER TABLE audit_log ADD COLUMN alg text NOT NULL DEFAULT 'sha256' CHECK (alg IN ('sha256', 'hmac-sha256'));

DO $$
BEGIN
    CREATE ROLE citywatch_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- roles are per cluster: another database (or a concurrent migration) made it
END
$$;

GRANT USAGE ON SCHEMA public TO citywatch_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO citywatch_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO citywatch_app;
-- Tables of later migrations (made by the same owner) get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO citywatch_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO citywatch_app;

REVOKE ALL ON audit_log FROM PUBLIC;
REVOKE ALL ON audit_log FROM citywatch_app;
GRANT SELECT, INSERT ON audit_log TO citywatch_app;
-- The migration bookkeeping is the owner's.
REVOKE ALL ON schema_migrations, citywatch_meta FROM citywatch_app;
GRANT SELECT ON schema_migrations, citywatch_meta TO citywatch_app;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
