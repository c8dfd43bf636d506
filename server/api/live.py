"""Live state for the map: cameras with their latest status and counts, open incidents, a change stream."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig
from server.api.deps import PoolDep, SiteDep
from server.api.encoding import site_row
from server.api.incidents import incident_by_id
from server.auth.deps import websocket_principal
from server.auth.roles import Perm

router = APIRouter(prefix="/api/v1/live", tags=["live"])
#: The WebSocket authenticates itself (a browser sends the token as ``?token=``, not as a header).
ws_router = APIRouter(prefix="/api/v1/live", tags=["live"])

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


async def camera_states(
    pool: AsyncConnectionPool[Any], site: SiteConfig, ids: list[str] | None = None
) -> list[dict[str, Any]]:
    cams = [c for c in site.cameras if ids is None or c.id in ids]
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_CAMERAS, ([c.id for c in cams],))
        live = {r["camera_id"]: r for r in await cur.fetchall()}
    out = []
    for c in cams:
        row = site_row(live.get(c.id, {}), ZoneInfo(site.site.timezone))
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
        return [site_row(r, ZoneInfo(site.site.timezone)) for r in await cur.fetchall()]


@router.get("/cameras", summary="Every camera with its latest status, heartbeat and counts")
async def cameras(pool: PoolDep, site: SiteDep) -> dict[str, Any]:
    return {"site_id": site.site.id, "cameras": await camera_states(pool, site)}


@router.get("/incidents", summary="Open incidents, newest first")
async def incidents(pool: PoolDep, site: SiteDep) -> dict[str, Any]:
    return {"site_id": site.site.id, "incidents": await open_incidents(pool, site)}


@ws_router.websocket("/ws")
async def stream(ws: WebSocket) -> None:
    """Sends ``{"type": "snapshot", ...}`` first, then ``{"type": "change", "cameras": [...],
    "incidents": [...]}`` with the new state of whatever a committed batch touched,
    ``{"type": "alert", "alert": {...}}`` for each alert raised, and ``{"type": "incident",
    "incident": {...}}`` (as in ``GET /api/v1/incidents``) when an incident's workflow changes. The
    token comes as ``?token=``; without a valid one the socket is closed with code 4401, without the
    role 4403."""
    app = ws.app
    pool: AsyncConnectionPool[Any] = app.state.pool
    principal = await websocket_principal(ws)
    if principal is None or not principal.may(Perm.LIVE):
        await ws.close(code=4401 if principal is None else 4403)
        return
    full: SiteConfig = app.state.site
    cams = [c for c in full.cameras if principal.sees_group(c.group)]
    site = full if len(cams) == len(full.cameras) else full.model_copy(update={"cameras": cams})
    visible = {c.id for c in cams}
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
            if "alert" in change:
                if change["alert"].get("camera_id") in visible:
                    await ws.send_json({"type": "alert", "alert": change["alert"]})
                continue
            if "incident_workflow" in change:
                if change.get("camera") in visible:
                    item = await incident_by_id(pool, site, change["incident_workflow"])
                    if item is not None:
                        await ws.send_json({"type": "incident", "incident": item})
                continue
            ids = None if change.get("all") else [c for c in change.get("cameras", []) if isinstance(c, str)]
            if ids is not None:
                ids = [c for c in ids if c in visible]
                if not ids and not change.get("incidents"):
                    continue
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
