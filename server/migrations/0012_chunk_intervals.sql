-- citywatch: backend=timescale
-- Chunks sized to province-scale data: at 2,000 cameras with one-minute bins the raw count rows reach
-- about 46 M a day, so 7-day chunks (0003) would hold some 320 M rows each, far beyond what fits in
-- memory with its indexes. One-day chunks keep a chunk's indexes in memory while it is written,
-- compress and drop by day, and stay few enough for a small site (365 a year per table). Applies to
-- new chunks; existing ones keep their size.
SELECT set_chunk_time_interval('counts', INTERVAL '1 day');
SELECT set_chunk_time_interval('count_bins', INTERVAL '1 day');
SELECT set_chunk_time_interval('zone_occupancy', INTERVAL '1 day');
SELECT set_chunk_time_interval('speeds', INTERVAL '1 day');
SELECT set_chunk_time_interval('movements', INTERVAL '1 day');
