-- citywatch: backend=plain
-- The rollup tables of 0002 get the bin totals of 0004 (backfilled).

ALTER TABLE count_bins_15m ADD COLUMN total bigint NOT NULL DEFAULT 0;
UPDATE count_bins_15m r SET total = s.t
FROM (SELECT camera_id, date_bin('15 minutes', bin_start, timestamptz '2000-01-01 00:00:00+00') AS bucket, sum(total) AS t FROM count_bins GROUP BY 1, 2) AS s
WHERE r.camera_id = s.camera_id AND r.bucket = s.bucket;

ALTER TABLE count_bins_1h ADD COLUMN total bigint NOT NULL DEFAULT 0;
UPDATE count_bins_1h r SET total = s.t
FROM (SELECT camera_id, date_trunc('hour', bin_start, {{site_timezone}}) AS bucket, sum(total) AS t FROM count_bins GROUP BY 1, 2) AS s
WHERE r.camera_id = s.camera_id AND r.bucket = s.bucket;

ALTER TABLE count_bins_1d ADD COLUMN total bigint NOT NULL DEFAULT 0;
UPDATE count_bins_1d r SET total = s.t
FROM (SELECT camera_id, date_trunc('day', bin_start, {{site_timezone}}) AS bucket, sum(total) AS t FROM count_bins GROUP BY 1, 2) AS s
WHERE r.camera_id = s.camera_id AND r.bucket = s.bucket;
