-- Video evidence of critical incidents (edge evidence messages): one clip per incident, kept beside the
-- snapshot (on disk under CITYWATCH_SNAPSHOT_DIR, or in data when that is unset). A re-sent clip of the
-- same incident is ignored (at-least-once delivery).

CREATE TABLE incident_clips (
    incident_id  uuid PRIMARY KEY,
    camera_id    text NOT NULL,
    content_type text NOT NULL,
    codec        text NOT NULL,
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    frames       integer NOT NULL CHECK (frames > 0),
    duration_s   real NOT NULL CHECK (duration_s > 0),
    clip_start   timestamptz NOT NULL,
    bytes        integer NOT NULL CHECK (bytes >= 0),
    path         text,   -- under CITYWATCH_SNAPSHOT_DIR, or NULL when stored in data
    data         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((path IS NULL) <> (data IS NULL))
);
CREATE INDEX incident_clips_camera ON incident_clips (camera_id, created_at);
