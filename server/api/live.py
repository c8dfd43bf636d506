"""Live state for the map: cameras with their latest status and counts, open incidents, a change stream."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Response, WebSocket, WebSocketDisconnect, status
from fastapi.responses import FileResponse
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig
from server.api.deps import PoolDep, SettingsDep, SiteDep

router = APIRouter(prefix="/api/v1/live", tags=["live"])
snapshots = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

_CAMERAS: LiteralString = """
SELECT camera_id, state, state_reason, state_health, state_at, last_seen_at, last_counts_bin, last_counts,
       last_heartbeat
FROM camera_live WHERE camera_id = ANY(%s)
"""
_OPEN: LiteralString = """
SELECT incident_id, camera_id, type, severity, rule_id, zone_id, line_id, started_at, latitude, longitude,
       summary, classes, track_ids, snapshot_id IS NOT NULL AS has_snapshot, last_event_at
FROM incidents WHERE state = 'open' AND camera_id = ANY(%s) ORDER BY started_at DESC LIMIT 500
"""


def _jsonable(row: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """Datetimes in the site's zone (ISO 8601 with offset), UUIDs as strings."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, datetime):
            out[k] = v.astimezone(tz).isoformat()
        elif isinstance(v, UUID):
            out[k] = str(v)
        else:
            out[k] = v
    return out


async def camera_states(
    pool: AsyncConnectionPool[Any], site: SiteConfig, ids: list[str] | None = None
) -> list[dict[str, Any]]:
    cams = [c for c in site.cameras if ids is None or c.id in ids]
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_CAMERAS, ([c.id for c in cams],))
        live = {r["camera_id"]: r for r in await cur.fetchall()}
    out = []
    for c in cams:
        row = _jsonable(live.get(c.id, {}), ZoneInfo(site.site.timezone))
        out.append(
            {
                "camera_id": c.id,
                "name": c.name,
                "group": c.group,
                "location": {"lat": c.location.lat, "lon": c.location.lon},
                "state": row.get("state") or "unknown",
                "state_reason": row.get("state_reason"),
                "state_health": row.get("state_health") or [],
                "state_at": row.get("state_at"),
                "last_seen_at": row.get("last_seen_at"),
                "last_counts": row.get("last_counts"),
                "last_heartbeat": row.get("last_heartbeat"),
            }
        )
    return out


async def open_incidents(pool: AsyncConnectionPool[Any], site: SiteConfig) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_OPEN, ([c.id for c in site.cameras],))
        return [_jsonable(r, ZoneInfo(site.site.timezone)) for r in await cur.fetchall()]


@router.get("/cameras", summary="Every camera with its latest status, heartbeat and counts")
async def cameras(pool: PoolDep, site: SiteDep) -> dict[str, Any]:
    return {"site_id": site.site.id, "cameras": await camera_states(pool, site)}


@router.get("/incidents", summary="Open incidents, newest first")
async def incidents(pool: PoolDep, site: SiteDep) -> dict[str, Any]:
    return {"site_id": site.site.id, "incidents": await open_incidents(pool, site)}


@router.websocket("/ws")
async def stream(ws: WebSocket) -> None:
    """Sends ``{"type": "snapshot", ...}`` first, then ``{"type": "change", "cameras": [...],
    "incidents": [...]}`` with the new state of whatever a committed batch touched."""
    app = ws.app
    pool: AsyncConnectionPool[Any] = app.state.pool
    site: SiteConfig = app.state.site
    await ws.accept()
    queue = app.state.hub.subscribe()
    try:
        await ws.send_json(
            {
                "type": "snapshot",
                "cameras": await camera_states(pool, site),
                "incidents": await open_incidents(pool, site),
            }
        )
        while True:
            change = await queue.get()
            ids = None if change.get("all") else [c for c in change.get("cameras", []) if isinstance(c, str)]
            payload = {
                "type": "change",
                "cameras": await camera_states(pool, site, ids),
                "incidents": await open_incidents(pool, site) if change.get("incidents") else None,
            }
            await ws.send_json(payload)
    except (WebSocketDisconnect, asyncio.CancelledError):
        pass
    finally:
        app.state.hub.unsubscribe(queue)
        with contextlib.suppress(RuntimeError):
            await ws.close()


@snapshots.get("/{incident_id}/snapshot", summary="The JPEG snapshot of an incident", response_class=Response)
async def snapshot(incident_id: UUID, pool: PoolDep, settings: SettingsDep) -> Response:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.content_type, s.path, s.data FROM incidents i JOIN snapshots s ON s.id = i.snapshot_id "
            "WHERE i.incident_id = %s",
            (incident_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such incident, or it has no snapshot")
    content_type, path, data = row
    if data is not None:
        return Response(bytes(data), media_type=content_type)
    if settings.snapshot_dir is None or path is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "the snapshot is on disk but CITYWATCH_SNAPSHOT_DIR is unset"
        )
    file = (settings.snapshot_dir / path).resolve()
    if not file.is_relative_to(settings.snapshot_dir.resolve()) or not file.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "snapshot file missing")
    return FileResponse(file, media_type=content_type)
