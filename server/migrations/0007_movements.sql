-- Turning movements per camera, bin, junction, entry line, exit line and class (counts messages'
-- optional `movements`). Written by the batch writer in the transaction that inserts the bin's
-- count_bins row, like counts, so a redelivered or re-sent bin adds nothing; the key also makes a
-- repeated row impossible (the table is small: a few rows per bin and junction).
CREATE TABLE movements (
    camera_id   text NOT NULL,
    bin_start   timestamptz NOT NULL,
    junction_id text NOT NULL,
    from_line   text NOT NULL,
    to_line     text NOT NULL,
    cls         text NOT NULL,
    count       integer NOT NULL,
    PRIMARY KEY (camera_id, bin_start, junction_id, from_line, to_line, cls)
);
