"""Live state for the map: cameras with their latest status and counts, open incidents, a change stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig
from server.api.deps import PoolDep, SiteDep
from server.api.encoding import site_row
from server.api.incidents import incident_by_id
from server.auth.deps import Principal, authenticate_token
from server.auth.roles import Perm
from server.live import LiveRegistry, scoped_site
from server.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/live", tags=["live"])
#: The WebSocket authenticates itself: the token comes in the first message after the accept.
ws_router = APIRouter(prefix="/api/v1/live", tags=["live"])

_CAMERAS: LiteralString = """
SELECT camera_id, state, state_reason, state_health, state_at, last_seen_at, last_counts_bin, last_counts,
       last_heartbeat
FROM camera_live WHERE camera_id = ANY(%s)
"""
_OPEN: LiteralString = """
SELECT incident_id, camera_id, type, severity, rule_id, zone_id, line_id, started_at, latitude, longitude,
       summary, snapshot_id IS NOT NULL AS has_snapshot, last_event_at
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


async def compute_change(
    pool: AsyncConnectionPool[Any], site: SiteConfig, visible: frozenset[str], change: dict[str, Any]
) -> list[dict[str, Any]]:
    """The messages one hub change means for the sockets that see ``site`` (computed once per scope)."""
    if "alert" in change:
        alert = change["alert"]
        return [{"type": "alert", "alert": alert}] if alert.get("camera_id") in visible else []
    if "incident_workflow" in change:
        if change.get("camera") not in visible:
            return []
        item = await incident_by_id(pool, site, change["incident_workflow"])
        return [] if item is None else [{"type": "incident", "incident": item}]
    ids = None if change.get("all") else [c for c in change.get("cameras", []) if isinstance(c, str)]
    if ids is not None:
        ids = [c for c in ids if c in visible]
        if not ids and not change.get("incidents"):
            return []
    return [
        {
            "type": "change",
            "cameras": await camera_states(pool, site, ids),
            "incidents": await open_incidents(pool, site) if change.get("incidents") else None,
        }
    ]


@router.get("/cameras", summary="Every camera with its latest status, heartbeat and counts")
async def cameras(pool: PoolDep, site: SiteDep) -> dict[str, Any]:
    return {"site_id": site.site.id, "cameras": await camera_states(pool, site)}


@router.get(
    "/incidents",
    summary="Open incidents, newest first (no track ids or classes: those are evidence, in the audited "
    "incident details)",
)
async def incidents(pool: PoolDep, site: SiteDep) -> dict[str, Any]:
    return {"site_id": site.site.id, "incidents": await open_incidents(pool, site)}


#: The first message must come within this many seconds of the accept, or the socket is closed 4401.
AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_TOO_MANY = 4401, 4403, 4429


async def _first_message_token(ws: WebSocket) -> str | None:
    """The token of ``{"type": "auth", "token": "..."}``, the first message after the accept."""
    try:
        msg = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT_S)
    except (TimeoutError, ValueError, KeyError):
        return None
    if not isinstance(msg, dict) or msg.get("type") != "auth" or not isinstance(msg.get("token"), str):
        return None
    token: str = msg["token"]
    return token


@ws_router.websocket("/ws")
async def stream(ws: WebSocket) -> None:
    """The live change stream. The socket is accepted first; the client then sends
    ``{"type": "auth", "token": "<access token>"}`` (never a token in the URL, never an API key).
    Then the server sends ``{"type": "snapshot", ...}``, ``{"type": "change", "cameras": [...],
    "incidents": [...]}`` with the new state of whatever a committed batch touched, ``{"type": "alert",
    "alert": {...}}`` for each alert raised, and ``{"type": "incident", "incident": {...}}`` when an
    incident's workflow changes. The user is checked again every ``CITYWATCH_LIVE_RECHECK_S``, when
    an admin changes them, and when the token expires. Close codes: 4401 no, bad or expired token (or
    a credential in the URL); 4403 the role may not see live data (or was changed); 4429 too many
    sockets for this user."""
    app = ws.app
    settings: Settings = app.state.settings
    await ws.accept()  # close only after the accept: a refused handshake is a 1006 that browsers retry
    if "token" in ws.query_params:
        log.warning("live: a credential came in the socket's URL; refused (send an auth message)")
        await ws.close(CLOSE_UNAUTHORIZED, "send the token in an auth message, never in the URL")
        return
    try:
        token = await _first_message_token(ws)
    except WebSocketDisconnect:
        return  # gone before saying who it is
    found = None if token is None else await authenticate_token(app.state.pool, app.state.jwt_secret, token)
    if token is None or found is None:
        await ws.close(CLOSE_UNAUTHORIZED, "not authenticated")
        return
    principal, expires_at = found
    if not principal.may(Perm.LIVE):
        await ws.close(CLOSE_FORBIDDEN, "your role may not see live data")
        return
    registry: LiveRegistry = app.state.live
    if not registry.admit(principal.name, settings.live_sockets_per_user):
        await ws.close(CLOSE_TOO_MANY, "too many live sockets for this user")
        return
    try:
        await _serve(ws, registry, principal, token, expires_at, settings.live_recheck_s)
    finally:
        registry.release(principal.name)


async def _serve(
    ws: WebSocket, registry: LiveRegistry, principal: Principal, token: str, expires_at: float, every_s: float
) -> None:
    app = ws.app
    full: SiteConfig = app.state.site
    site = scoped_site(full, principal)
    feed, out = registry.join(site)
    # Both tasks live until they complete (never cancelled mid-loop, so no message is lost).
    reader: asyncio.Task[Any] = asyncio.create_task(ws.receive())
    getter: asyncio.Task[dict[str, Any]] = asyncio.create_task(out.get())
    code: int | None = None
    try:
        await ws.send_json(
            {
                "type": "snapshot",
                "cameras": await camera_states(app.state.pool, site),
                "incidents": await open_incidents(app.state.pool, site),
            }
        )
        next_check = min(time.time() + every_s, expires_at)
        while code is None:
            done, _ = await asyncio.wait(
                {getter, reader},
                timeout=max(0.0, next_check - time.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reader in done:
                if reader.result().get("type") == "websocket.disconnect":
                    return
                reader = asyncio.create_task(ws.receive())  # anything the client says is ignored
            recheck = time.time() >= next_check
            if getter in done:
                item = getter.result()
                getter = asyncio.create_task(out.get())
                if "recheck" in item:
                    recheck = recheck or item["recheck"] in (principal.name, "*")
                else:
                    await ws.send_json(item)
            if recheck:
                code = await _recheck(app, principal, token)
                next_check = min(time.time() + every_s, expires_at)
        log.info(
            "live: closing the socket of %r (%d): the user changed or the token ended", principal.name, code
        )
        await ws.close(code)
    except (WebSocketDisconnect, asyncio.CancelledError):
        pass
    finally:
        reader.cancel()
        getter.cancel()
        registry.leave(feed, out)
        with contextlib.suppress(RuntimeError):
            await ws.close()


async def _recheck(app: Any, principal: Principal, token: str) -> int | None:
    """None while the socket may stay open, else its close code."""
    found = await authenticate_token(app.state.pool, app.state.jwt_secret, token)
    if found is None:
        return CLOSE_UNAUTHORIZED
    now = found[0]
    if not now.may(Perm.LIVE) or now.camera_groups != principal.camera_groups:
        return CLOSE_FORBIDDEN
    return None
