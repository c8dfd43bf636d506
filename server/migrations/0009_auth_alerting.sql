-- Users, API keys, the incident workflow, alerts with their delivery records, and the audit log.

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    display_name  text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'police', 'planner')),
    -- NULL: every camera; otherwise only cameras of these groups.
    camera_groups text[],
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    -- Raised on disable or password change: tokens carrying an older version stop working.
    token_version integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    -- The key is shown once; only its SHA-256 is kept (keys are 256-bit random, so no slow hash needed).
    key_hash      bytea NOT NULL UNIQUE,
    key_prefix    text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'police', 'planner')),
    camera_groups text[],
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

-- The police workflow of an incident (the edge's own open/closed state stays in incidents.state).
ALTER TABLE incidents
    ADD COLUMN workflow_state  text NOT NULL DEFAULT 'new'
        CHECK (workflow_state IN ('new', 'acknowledged', 'assigned', 'resolved', 'false_alarm')),
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN assigned_to     text,
    ADD COLUMN assigned_at     timestamptz,
    ADD COLUMN assigned_by     text,
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN resolved_by     text,
    ADD COLUMN resolution_note text,
    -- When the server first stored it: the SLA clock starts here, not at the edge's clock.
    ADD COLUMN received_at     timestamptz NOT NULL DEFAULT now();
CREATE INDEX incidents_workflow ON incidents (workflow_state, started_at);

-- The alert rules an admin edits through the API; the site file's rules apply while this is empty.
CREATE TABLE alert_rules (
    id         integer PRIMARY KEY CHECK (id = 1),
    rules      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

CREATE TABLE alerts (
    alert_id          uuid PRIMARY KEY,
    incident_id       uuid NOT NULL,
    rule_id           text NOT NULL,
    dedup_key         text NOT NULL,
    camera_id         text NOT NULL,
    raised_at         timestamptz NOT NULL,
    payload           jsonb NOT NULL,
    -- Escalation levels already sent (0 is the first notice).
    escalation_levels integer[] NOT NULL DEFAULT '{0}',
    UNIQUE (rule_id, incident_id)
);
CREATE INDEX alerts_dedup ON alerts (rule_id, dedup_key, raised_at DESC);
CREATE INDEX alerts_incident ON alerts (incident_id);

-- One row per delivery attempt on one channel.
CREATE TABLE alert_deliveries (
    id               bigserial PRIMARY KEY,
    alert_id         uuid NOT NULL REFERENCES alerts (alert_id),
    escalation_level integer NOT NULL DEFAULT 0,
    channel          text NOT NULL,
    attempt          integer NOT NULL,
    ok               boolean NOT NULL,
    status           text,
    error            text,
    duration_ms      double precision NOT NULL,
    at               timestamptz NOT NULL,
    final            boolean NOT NULL
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, at);

-- Append-only: each row's hash covers its content and the previous row's hash, so an edited,
-- deleted or inserted row breaks the chain (checked by GET /api/v1/audit/verify).
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    prev_hash   text NOT NULL,
    hash        text NOT NULL UNIQUE
);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
