-- Core tables, the same on plain PostgreSQL and TimescaleDB (0003 turns some into hypertables).
-- All times are timestamptz in UTC; the API converts to the site's time zone on output.

-- Idempotency: every stored or rejected message id, so a redelivery changes nothing.
CREATE TABLE processed_messages (
    msg_id      uuid PRIMARY KEY,
    kind        text NOT NULL,
    camera_id   text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_messages_received_at ON processed_messages (received_at);

-- One row per counts message: the bin's coverage and health (the quality of its counts).
CREATE TABLE count_bins (
    camera_id   text NOT NULL,
    bin_start   timestamptz NOT NULL,
    bin_end     timestamptz NOT NULL,
    msg_id      uuid NOT NULL,
    seq         bigint NOT NULL,
    frames      integer NOT NULL,
    fps         real NOT NULL,
    health_mask integer NOT NULL DEFAULT 0,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (camera_id, bin_start)
);

-- One row per camera, bin, line, direction and class (only non-zero cells are sent). Unique because
-- rows are only written in the transaction that inserts their count_bins row (whose key is unique) and
-- the writer merges repeated cells of a message; a unique index on five text columns would halve the
-- ingest rate for no extra guarantee.
CREATE TABLE counts (
    camera_id text NOT NULL,
    bin_start timestamptz NOT NULL,
    line_id   text NOT NULL,
    direction text NOT NULL,
    cls       text NOT NULL,
    count     integer NOT NULL
);
CREATE INDEX counts_camera_bin ON counts (camera_id, bin_start);

CREATE TABLE zone_occupancy (
    camera_id    text NOT NULL,
    bin_start    timestamptz NOT NULL,
    zone_id      text NOT NULL,
    cls          text NOT NULL,
    mean_count   real NOT NULL,
    max_count    integer NOT NULL,
    entries      integer NOT NULL,
    mean_dwell_s real,
    PRIMARY KEY (camera_id, bin_start, zone_id, cls)
);

CREATE TABLE speeds (
    camera_id text NOT NULL,
    bin_start timestamptz NOT NULL,
    line_id   text NOT NULL,
    direction text NOT NULL,
    cls       text NOT NULL,
    n         integer NOT NULL,
    mean_kmh  real NOT NULL,
    p85_kmh   real NOT NULL,
    PRIMARY KEY (camera_id, bin_start, line_id, direction, cls)
);

CREATE TABLE snapshots (
    id           bigserial PRIMARY KEY,
    incident_id  uuid NOT NULL,
    content_type text NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    path         text,   -- under CITYWATCH_SNAPSHOT_DIR, or NULL when stored in data
    data         bytea,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Current state of each incident (one row), plus its state history below.
CREATE TABLE incidents (
    incident_id   uuid PRIMARY KEY,
    camera_id     text NOT NULL,
    type          text NOT NULL,
    severity      text NOT NULL,
    rule_id       text NOT NULL,
    zone_id       text,
    line_id       text,
    state         text NOT NULL CHECK (state IN ('open', 'closed')),
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    latitude      double precision,
    longitude     double precision,
    summary       text NOT NULL DEFAULT '',
    classes       text[] NOT NULL DEFAULT '{}',
    track_ids     integer[] NOT NULL DEFAULT '{}',
    details       jsonb NOT NULL DEFAULT '{}',
    snapshot_id   bigint REFERENCES snapshots (id),
    last_event_at timestamptz NOT NULL
);
CREATE INDEX incidents_open ON incidents (camera_id) WHERE state = 'open';
CREATE INDEX incidents_started ON incidents (started_at);

CREATE TABLE incident_events (
    msg_id      uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    camera_id   text NOT NULL,
    event       text NOT NULL,
    ts          timestamptz NOT NULL,
    severity    text NOT NULL,
    summary     text NOT NULL DEFAULT '',
    track_ids   integer[] NOT NULL DEFAULT '{}',
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, ts);

CREATE TABLE camera_status (
    camera_id text NOT NULL,
    ts        timestamptz NOT NULL,
    msg_id    uuid NOT NULL,
    edge_id   text NOT NULL,
    seq       bigint NOT NULL,
    state     text NOT NULL,
    reason    text NOT NULL DEFAULT '',
    health    text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX camera_status_camera_ts ON camera_status (camera_id, ts DESC);

CREATE TABLE heartbeats (
    camera_id      text NOT NULL,
    ts             timestamptz NOT NULL,
    msg_id         uuid NOT NULL,
    edge_id        text NOT NULL,
    seq            bigint NOT NULL,
    fps            real NOT NULL,
    source_fps     real NOT NULL,
    inference_ms   real NOT NULL,
    dropped_frames bigint NOT NULL,
    outbox_depth   integer NOT NULL,
    uptime_s       double precision NOT NULL,
    reconnects     integer NOT NULL,
    health         text[] NOT NULL DEFAULT '{}',
    version        text NOT NULL DEFAULT ''
);
CREATE INDEX heartbeats_camera_ts ON heartbeats (camera_id, ts DESC);

-- Latest state per camera for the live map (status and last heartbeat/counts), kept by the writer.
CREATE TABLE camera_live (
    camera_id       text PRIMARY KEY,
    state           text,
    state_reason    text,
    state_health    text[],
    state_at        timestamptz,
    last_seen_at    timestamptz,
    last_counts_bin timestamptz,
    last_counts     jsonb,
    last_heartbeat  jsonb
);

CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    camera_id    text,
    msg_id       text,
    payload_size integer NOT NULL,
    payload      bytea NOT NULL   -- the first CITYWATCH dead-letter bytes only (bounded)
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);

-- Sequence checking: the highest data seq per camera and the open/closed gaps below it.
CREATE TABLE camera_seq (
    camera_id  text PRIMARY KEY,
    max_seq    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE seq_gaps (
    id         bigserial PRIMARY KEY,
    camera_id  text NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    opened_at  timestamptz NOT NULL,
    closed_at  timestamptz,
    CHECK (first_seq <= last_seq)
);
CREATE INDEX seq_gaps_open ON seq_gaps (camera_id) WHERE closed_at IS NULL;
