"""The fleet registry in the database: the desired site config and what each edge announced.

The site file seeds it (:func:`import_site`) and backs it up (:func:`export_site`); the round trip
loses nothing the file's model holds (YAML comments and ``${VAR}`` spellings are not kept: variables
are expanded on import). Every change validates the whole resulting site exactly as
``citywatch config check`` does, so the registry never holds a config an edge would reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from citywatch.site import ConfigError, SiteConfig
from citywatch.site_doc import document, to_yaml, validate
from contract.fleet import EdgeAnnounce, EdgeConfig
from server.auth import audit

_CAMERA_PATH = re.compile(r"^cameras\[(\d+)\]\.?(.*)$")


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """A validation problem of one camera, ``field`` relative to the camera (``lines[0].points``)."""

    field: str
    message: str


class CameraRejectedError(Exception):
    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.field or '<camera>'}: {i.message}" for i in issues))


class NotSeededError(Exception):
    """The registry holds no site yet (import a site file first)."""


async def _bump(conn: psycopg.AsyncConnection[Any], groups: set[str]) -> None:
    for group in sorted(groups):
        await conn.execute(
            "INSERT INTO fleet_groups (camera_group, config_version) VALUES (%s, 1) "
            "ON CONFLICT (camera_group) DO UPDATE SET config_version = fleet_groups.config_version + 1",
            (group,),
        )


async def _groups(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    cur = await conn.execute(
        "SELECT camera_group FROM fleet_cameras UNION SELECT camera_group FROM fleet_groups"
    )
    return {str(r[0]) for r in await cur.fetchall()}


async def seed_checksum(conn: psycopg.AsyncConnection[Any]) -> str | None:
    """The checksum of the site file last seeded at start (None: never seeded, or imported by hand)."""
    cur = await conn.execute("SELECT seed_sha256 FROM fleet_site WHERE id = 1")
    row = await cur.fetchone()
    return None if row is None or row[0] is None else str(row[0])


async def import_site(
    conn: psycopg.AsyncConnection[Any], cfg: SiteConfig, actor: str, seed_sha256: str | None = None
) -> None:
    """Replace the registry's site with ``cfg`` (one transaction, audited); every group's version grows."""
    doc = document(cfg)
    async with conn.transaction():
        before = await _groups(conn)
        await conn.execute("DELETE FROM fleet_cameras")
        await conn.execute(
            "INSERT INTO fleet_site (id, site, mqtt_prefix, alerting, seed_sha256, updated_by) "
            "VALUES (1, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET site = EXCLUDED.site, mqtt_prefix = EXCLUDED.mqtt_prefix, "
            "alerting = EXCLUDED.alerting, "
            "seed_sha256 = coalesce(EXCLUDED.seed_sha256, fleet_site.seed_sha256), updated_at = now(), "
            "updated_by = EXCLUDED.updated_by",
            (Jsonb(doc["site"]), cfg.mqtt_prefix, Jsonb(doc.get("alerting", {})), seed_sha256, actor),
        )
        for pos, (cam, data) in enumerate(zip(cfg.cameras, doc["cameras"], strict=True)):
            await conn.execute(
                "INSERT INTO fleet_cameras (camera_id, position, camera_group, config, updated_by) "
                "VALUES (%s, %s, %s, %s, %s)",
                (cam.id, pos, cam.group, Jsonb(data), actor),
            )
        await _bump(conn, before | {c.group for c in cfg.cameras})
        await audit.append(conn, actor, "site_import", "site", cfg.site.id, {"cameras": len(cfg.cameras)})


async def _document(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    cur = await conn.execute("SELECT site, mqtt_prefix, alerting FROM fleet_site WHERE id = 1")
    row = await cur.fetchone()
    if row is None:
        raise NotSeededError("the fleet registry holds no site yet")
    cur = await conn.execute("SELECT config FROM fleet_cameras ORDER BY position, camera_id")
    cameras = [r[0] for r in await cur.fetchall()]
    doc: dict[str, Any] = {"site": row[0], "mqtt_prefix": row[1], "cameras": cameras}
    if row[2]:
        doc["alerting"] = row[2]
    return doc


async def export_site(conn: psycopg.AsyncConnection[Any]) -> SiteConfig:
    """The registry's site, validated (raises :class:`NotSeededError` before any import)."""
    return validate(await _document(conn))


def _camera_issues(exc: ConfigError, index: int) -> list[FieldIssue]:
    out = []
    for issue in exc.issues:
        m = _CAMERA_PATH.match(issue.path)
        if m and int(m.group(1)) == index:
            out.append(FieldIssue(m.group(2), issue.message))
        elif not m:
            out.append(FieldIssue("", f"{issue.path or '<site>'}: {issue.message}"))
    return out or [FieldIssue("", str(i)) for i in exc.issues[:5]]


async def put_camera(
    conn: psycopg.AsyncConnection[Any], camera: dict[str, Any], actor: str
) -> tuple[SiteConfig, bool]:
    """Add or replace one camera (by its ``id``); returns the new site and whether it was new.

    Raises :class:`CameraRejectedError` with each problem relative to the camera; nothing is stored then.
    """
    async with conn.transaction():
        doc = await _document(conn)
        cam_id = camera.get("id")
        index = next((i for i, c in enumerate(doc["cameras"]) if c.get("id") == cam_id), None)
        created = index is None
        old_group = None if index is None else doc["cameras"][index].get("group", "default")
        if index is None:
            index = len(doc["cameras"])
            doc["cameras"].append(camera)
        else:
            doc["cameras"][index] = camera
        try:
            cfg = validate(doc)
        except ConfigError as exc:
            raise CameraRejectedError(_camera_issues(exc, index)) from exc
        cam = cfg.cameras[index]
        data = document(cfg)["cameras"][index]
        await conn.execute(
            "INSERT INTO fleet_cameras (camera_id, position, camera_group, config, updated_by) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (camera_id) DO UPDATE SET "
            "camera_group = EXCLUDED.camera_group, config = EXCLUDED.config, updated_at = now(), "
            "updated_by = EXCLUDED.updated_by",
            (cam.id, index, cam.group, Jsonb(data), actor),
        )
        await _bump(conn, {cam.group} | ({old_group} if old_group else set()))
        await audit.append(
            conn, actor, "camera_add" if created else "camera_change", "camera", cam.id, {"config": data}
        )
    return cfg, created


async def delete_camera(conn: psycopg.AsyncConnection[Any], camera_id: str, actor: str) -> str | None:
    """Remove a camera; returns its group (None when there was no such camera)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT count(*) FROM fleet_cameras")
        row = await cur.fetchone()
        cur = await conn.execute(
            "DELETE FROM fleet_cameras WHERE camera_id = %s RETURNING camera_group", (camera_id,)
        )
        gone = await cur.fetchone()
        if gone is None:
            return None
        if row is not None and int(row[0]) <= 1:
            raise CameraRejectedError([FieldIssue("", "a site keeps at least one camera")])
        await _bump(conn, {str(gone[0])})
        await audit.append(conn, actor, "camera_remove", "camera", camera_id)
    return str(gone[0])


async def desired_configs(
    conn: psycopg.AsyncConnection[Any], groups: set[str] | None = None
) -> list[EdgeConfig]:
    """The config of each group (of ``groups``, or all), as it is pushed to the group's edge."""
    doc = await _document(conn)
    site_id = str(doc["site"]["id"])
    cur = await conn.execute(
        "SELECT camera_group, config_version, model, model_sha256 FROM fleet_groups ORDER BY camera_group"
    )
    now = datetime.now(UTC)
    out = []
    for group, version, model, sha in await cur.fetchall():
        if groups is not None and group not in groups:
            continue
        cams = [c for c in doc["cameras"] if c.get("group", "default") == group]
        pins = {model: sha} if model and sha else {}
        out.append(
            EdgeConfig(site_id=site_id, group=group, version=int(version), cameras=cams, models=pins, ts=now)
        )
    return out


async def assign_model(
    conn: psycopg.AsyncConnection[Any], group: str, model: str | None, sha256: str | None, actor: str
) -> SiteConfig:
    """Roll a model out to every camera of ``group``, pinned by checksum (``model`` None: roll back to
    the previous one). Edges refuse a pinned model whose file does not have that checksum."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT model, model_sha256, previous_model, previous_sha256 FROM fleet_groups "
            "WHERE camera_group = %s FOR UPDATE",
            (group,),
        )
        row = await cur.fetchone()
        if row is None:
            raise CameraRejectedError([FieldIssue("group", f"no camera group {group!r}")])
        current, current_sha, previous, previous_sha = row
        if model is None:
            if not previous or not previous_sha:
                raise CameraRejectedError([FieldIssue("model", "nothing to roll back to")])
            model, sha256 = previous, previous_sha
        doc = await _document(conn)
        for cam in doc["cameras"]:
            if cam.get("group", "default") == group:
                cam["detector"] = {**cam.get("detector", {}), "model": model}
        try:
            cfg = validate(doc)
        except ConfigError as exc:
            raise CameraRejectedError(_camera_issues(exc, -1)) from exc
        data = document(cfg)["cameras"]
        for cam, cam_doc in zip(cfg.cameras, data, strict=True):
            if cam.group == group:
                await conn.execute(
                    "UPDATE fleet_cameras SET config = %s, updated_at = now(), updated_by = %s "
                    "WHERE camera_id = %s",
                    (Jsonb(cam_doc), actor, cam.id),
                )
        await conn.execute(
            "UPDATE fleet_groups SET model = %s, model_sha256 = %s, previous_model = %s, "
            "previous_sha256 = %s, config_version = config_version + 1 WHERE camera_group = %s",
            (model, sha256, current, current_sha, group),
        )
        await audit.append(
            conn, actor, "model_rollout", "camera_group", group, {"model": model, "sha256": sha256}
        )
    return cfg


async def mark_published(conn: psycopg.AsyncConnection[Any], configs: list[EdgeConfig]) -> None:
    for c in configs:
        await conn.execute("UPDATE fleet_groups SET published_at = now() WHERE camera_group = %s", (c.group,))


UPSERT_ANNOUNCE = (
    "INSERT INTO fleet_edges (camera_group, edge_id, announce, last_seen) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (camera_group) DO UPDATE SET edge_id = EXCLUDED.edge_id, announce = EXCLUDED.announce, "
    "last_seen = EXCLUDED.last_seen"
)


def record_announce(conn: psycopg.Connection[Any], msg: EdgeAnnounce, received: datetime) -> None:
    """Store an edge's announcement (sync: called from the MQTT bridge's thread)."""
    conn.execute(UPSERT_ANNOUNCE, (msg.group, msg.edge_id, Jsonb(msg.model_dump(mode="json")), received))


__all__ = [
    "CameraRejectedError",
    "FieldIssue",
    "NotSeededError",
    "delete_camera",
    "desired_configs",
    "document",
    "export_site",
    "import_site",
    "put_camera",
    "record_announce",
    "to_yaml",
    "validate",
]
