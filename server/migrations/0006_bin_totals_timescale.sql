-- citywatch: backend=timescale
-- The continuous aggregates of 0003 cannot gain a column: recreate the count_bins ones with the bin
-- totals of 0004. They are real-time, so answers stay complete while the refresh policies (re-applied
-- after migrating) materialize them again.

DROP MATERIALIZED VIEW count_bins_15m;
CREATE MATERIALIZED VIEW count_bins_15m
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '15 minutes', bin_start) AS bucket,
       count(*)::bigint AS n_bins,
       sum(extract(epoch FROM bin_end - bin_start))::double precision AS covered_s,
       sum(frames)::bigint AS frames,
       min(fps) AS min_fps,
       bit_or(health_mask) AS health_mask,
       sum(total)::bigint AS total
FROM count_bins
GROUP BY camera_id, bucket
WITH NO DATA;

DROP MATERIALIZED VIEW count_bins_1h;
CREATE MATERIALIZED VIEW count_bins_1h
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '1 hour', bin_start, {{site_timezone}}) AS bucket,
       count(*)::bigint AS n_bins,
       sum(extract(epoch FROM bin_end - bin_start))::double precision AS covered_s,
       sum(frames)::bigint AS frames,
       min(fps) AS min_fps,
       bit_or(health_mask) AS health_mask,
       sum(total)::bigint AS total
FROM count_bins
GROUP BY camera_id, bucket
WITH NO DATA;

DROP MATERIALIZED VIEW count_bins_1d;
CREATE MATERIALIZED VIEW count_bins_1d
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT camera_id, time_bucket(INTERVAL '1 day', bin_start, {{site_timezone}}) AS bucket,
       count(*)::bigint AS n_bins,
       sum(extract(epoch FROM bin_end - bin_start))::double precision AS covered_s,
       sum(frames)::bigint AS frames,
       min(fps) AS min_fps,
       bit_or(health_mask) AS health_mask,
       sum(total)::bigint AS total
FROM count_bins
GROUP BY camera_id, bucket
WITH NO DATA;
