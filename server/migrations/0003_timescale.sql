-- citywatch: backend=timescale
-- TimescaleDB: hypertables for the time series, and continuous aggregates (real-time, so answers equal
-- raw sums) with the same names and columns as the plain-PostgreSQL rollup tables of 0002.
-- {{site_timezone}} is replaced by the site's time zone (hour and day buckets are local).
-- Compression, refresh and retention policies are applied after migrating, from the settings.

SELECT create_hypertable('count_bins', 'bin_start', chunk_time_interval => INTERVAL '7 days', migrate_data => true);
SELECT create_hypertable('counts', 'bin_start', chunk_time_interval => INTERVAL '7 days', migrate_data => true);
SELECT create_hypertable('zone_occupancy', 'bin_start', chunk_time_interval => INTERVAL '7 days', migrate_data => true);
SELECT create_hypertable('speeds', 'bin_start', chunk_time_interval => INTERVAL '7 days', migrate_data => true);
SELECT create_hypertable('camera_status', 'ts', chunk_time_interval => INTERVAL '30 days', migrate_data => true);
SELECT create_hypertable('heartbeats', 'ts', chunk_time_interval => INTERVAL '1 day', migrate_data => true);

CREATE MATERIALIZED VIEW counts_15m
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '15 minutes', bin_start) AS bucket, line_id, direction, cls, sum(count)::bigint AS count
FROM counts
GROUP BY camera_id, bucket, line_id, direction, cls
WITH NO DATA;

CREATE MATERIALIZED VIEW count_bins_15m
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '15 minutes', bin_start) AS bucket,
       count(*)::bigint AS n_bins,
       sum(extract(epoch FROM bin_end - bin_start))::double precision AS covered_s,
       sum(frames)::bigint AS frames,
       min(fps) AS min_fps,
       bit_or(health_mask) AS health_mask
FROM count_bins
GROUP BY camera_id, bucket
WITH NO DATA;

CREATE MATERIALIZED VIEW counts_1h
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '1 hour', bin_start, {{site_timezone}}) AS bucket, line_id, direction, cls, sum(count)::bigint AS count
FROM counts
GROUP BY camera_id, bucket, line_id, direction, cls
WITH NO DATA;

CREATE MATERIALIZED VIEW count_bins_1h
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '1 hour', bin_start, {{site_timezone}}) AS bucket,
       count(*)::bigint AS n_bins,
       sum(extract(epoch FROM bin_end - bin_start))::double precision AS covered_s,
       sum(frames)::bigint AS frames,
       min(fps) AS min_fps,
       bit_or(health_mask) AS health_mask
FROM count_bins
GROUP BY camera_id, bucket
WITH NO DATA;

CREATE MATERIALIZED VIEW counts_1d
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '1 day', bin_start, {{site_timezone}}) AS bucket, line_id, direction, cls, sum(count)::bigint AS count
FROM counts
GROUP BY camera_id, bucket, line_id, direction, cls
WITH NO DATA;

CREATE MATERIALIZED VIEW count_bins_1d
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '1 day', bin_start, {{site_timezone}}) AS bucket,
       count(*)::bigint AS n_bins,
       sum(extract(epoch FROM bin_end - bin_start))::double precision AS covered_s,
       sum(frames)::bigint AS frames,
       min(fps) AS min_fps,
       bit_or(health_mask) AS health_mask
FROM count_bins
GROUP BY camera_id, bucket
WITH NO DATA;

ALTER TABLE counts SET (timescaledb.compress, timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'bin_start');
ALTER TABLE count_bins SET (timescaledb.compress, timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'bin_start');
ALTER TABLE heartbeats SET (timescaledb.compress, timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'ts');
