-- citywatch: backend=plain
-- Rollups on plain PostgreSQL: tables the batch writer updates in the same transaction as the raw rows.
-- (On TimescaleDB 0003 creates continuous aggregates of the same names and columns instead.)

CREATE TABLE counts_15m (
    camera_id text NOT NULL,
    bucket    timestamptz NOT NULL,
    line_id   text NOT NULL,
    direction text NOT NULL,
    cls       text NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (camera_id, bucket, line_id, direction, cls)
);
CREATE INDEX counts_15m_bucket ON counts_15m (bucket);

CREATE TABLE count_bins_15m (
    camera_id   text NOT NULL,
    bucket      timestamptz NOT NULL,
    n_bins      bigint NOT NULL,
    covered_s   double precision NOT NULL,
    frames      bigint NOT NULL,
    min_fps     real NOT NULL,
    health_mask integer NOT NULL,
    PRIMARY KEY (camera_id, bucket)
);
CREATE INDEX count_bins_15m_bucket ON count_bins_15m (bucket);

CREATE TABLE counts_1h (
    camera_id text NOT NULL,
    bucket    timestamptz NOT NULL,
    line_id   text NOT NULL,
    direction text NOT NULL,
    cls       text NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (camera_id, bucket, line_id, direction, cls)
);
CREATE INDEX counts_1h_bucket ON counts_1h (bucket);

CREATE TABLE count_bins_1h (
    camera_id   text NOT NULL,
    bucket      timestamptz NOT NULL,
    n_bins      bigint NOT NULL,
    covered_s   double precision NOT NULL,
    frames      bigint NOT NULL,
    min_fps     real NOT NULL,
    health_mask integer NOT NULL,
    PRIMARY KEY (camera_id, bucket)
);
CREATE INDEX count_bins_1h_bucket ON count_bins_1h (bucket);

CREATE TABLE counts_1d (
    camera_id text NOT NULL,
    bucket    timestamptz NOT NULL,
    line_id   text NOT NULL,
    direction text NOT NULL,
    cls       text NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (camera_id, bucket, line_id, direction, cls)
);
CREATE INDEX counts_1d_bucket ON counts_1d (bucket);

CREATE TABLE count_bins_1d (
    camera_id   text NOT NULL,
    bucket      timestamptz NOT NULL,
    n_bins      bigint NOT NULL,
    covered_s   double precision NOT NULL,
    frames      bigint NOT NULL,
    min_fps     real NOT NULL,
    health_mask integer NOT NULL,
    PRIMARY KEY (camera_id, bucket)
);
CREATE INDEX count_bins_1d_bucket ON count_bins_1d (bucket);
