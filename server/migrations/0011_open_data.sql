-- Open data: the sample flag on count bins (demo history, never mixed with live data), daily dumps,
-- and the outbox of NGSI-LD pushes to other agencies' context brokers (with its dead letters).

-- true: a bin made up by `citywatch demo --history` from replayed clips, not observed live.
ALTER TABLE count_bins ADD COLUMN sample boolean NOT NULL DEFAULT false;

-- One file per dataset, local day and format; its SHA-256 is published next to it.
CREATE TABLE opendata_dumps (
    dataset    text NOT NULL,
    day        date NOT NULL,
    format     text NOT NULL CHECK (format IN ('csv', 'parquet')),
    data       bytea NOT NULL,
    sha256     text NOT NULL,
    rows       integer NOT NULL,
    sample     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, day, format)
);

-- How far each push stream has got (e.g. the last hour whose aggregate was queued).
CREATE TABLE opendata_push_state (
    stream     text PRIMARY KEY,
    last_mark  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Entities already queued for a push (incidents are sent once per state).
CREATE TABLE opendata_push_sent (
    entity_key text PRIMARY KEY,
    queued_at  timestamptz NOT NULL DEFAULT now()
);

-- Upsert requests waiting for delivery; delivered rows are deleted, failed ones retried with backoff,
-- and after the last attempt kept with dead = true (the dead-letter record) with the last error.
CREATE TABLE opendata_push_outbox (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    stream      text NOT NULL,
    entities    jsonb NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text NOT NULL DEFAULT '',
    dead        boolean NOT NULL DEFAULT false
);
CREATE INDEX opendata_push_outbox_due ON opendata_push_outbox (next_at) WHERE NOT dead;
