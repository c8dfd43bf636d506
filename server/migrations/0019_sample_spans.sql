-- Where each camera's sample history (citywatch demo --history) lies: one small row per camera, so the
-- history API marks sample buckets without scanning count_bins (its rollups carry no sample flag).
-- Sample bins fill whole local days before the camera's first live bin, so [first_bin, end_bin) holds
-- only sample data.
CREATE TABLE sample_spans (
    camera_id text PRIMARY KEY,
    first_bin timestamptz NOT NULL,
    end_bin   timestamptz NOT NULL CHECK (end_bin > first_bin)
);
