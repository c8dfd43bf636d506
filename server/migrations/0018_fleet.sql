-- The fleet registry: the site's desired configuration (seeded from the site file, edited in the web
-- app), the config version pushed to each camera group's edge, and what each edge last announced.

-- The site file's sections other than its cameras, kept as validated JSON.
CREATE TABLE fleet_site (
    id          integer PRIMARY KEY CHECK (id = 1),
    site        jsonb NOT NULL,
    mqtt_prefix text NOT NULL,
    alerting    jsonb NOT NULL,
    -- SHA-256 of the site file's content when it was last imported at start: a changed file re-seeds.
    seed_sha256 text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);

-- The desired config of each camera: a site-file camera entry, validated before it is stored.
CREATE TABLE fleet_cameras (
    camera_id    text PRIMARY KEY,
    position     integer NOT NULL,
    camera_group text NOT NULL,
    config       jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text NOT NULL
);
CREATE INDEX fleet_cameras_group ON fleet_cameras (camera_group, position);

-- The config version of each group: raised by every change of one of its cameras, then pushed.
CREATE TABLE fleet_groups (
    camera_group   text PRIMARY KEY,
    config_version integer NOT NULL DEFAULT 0,
    published_at   timestamptz,
    -- The model rolled out to the group, pinned by checksum, and the one before it (for a rollback).
    model            text,
    model_sha256     text,
    previous_model   text,
    previous_sha256  text
);

-- The last announcement of the edge serving each group (contract.fleet.EdgeAnnounce).
CREATE TABLE fleet_edges (
    camera_group text PRIMARY KEY,
    edge_id      text NOT NULL,
    announce     jsonb NOT NULL,
    last_seen    timestamptz NOT NULL
);
