-- count_bins.total: the sum of a bin's counts. It rolls up with the quality columns, so camera totals
-- and peak hours read only the small count_bins rollups instead of every counts row.
ALTER TABLE count_bins ADD COLUMN total bigint NOT NULL DEFAULT 0;

UPDATE count_bins b SET total = s.t
FROM (SELECT camera_id, bin_start, sum(count) AS t FROM counts GROUP BY camera_id, bin_start) AS s
WHERE b.camera_id = s.camera_id AND b.bin_start = s.bin_start;
