"""Pushes to another agency's NGSI-LD context broker (``POST /ngsi-ld/v1/entityOperations/upsert``).

At least once: work is first queued in ``opendata_push_outbox`` in the same transaction that advances
the stream's mark (so nothing is skipped after a crash), then delivered; a failed request is retried
with doubling delays and, after the last attempt, kept as a dead letter (``dead = true`` with the last
error). The broker may see a batch twice; upserts of the same ids are idempotent.

Streams: ``flow-1h`` (each closed hour's counts as ``TrafficFlowObserved``, exact counts: agencies are
not the public), ``alert`` (open traffic incidents as ``Alert``) and ``accident`` (resolved accidents as
anonymised ``RoadAccident``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

import httpx
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from citywatch.site import SiteConfig
from citywatch.site_opendata import ContextBroker
from server.opendata import ngsi
from server.opendata.cells import public_cells
from server.opendata.http import LD_JSON

# httpx errors that make a delivery fail (and be retried):
#   httpx.TimeoutException, httpx.ConnectError, ... < httpx.TransportError < httpx.HTTPError
log = logging.getLogger(__name__)

UPSERT_PATH = "/ngsi-ld/v1/entityOperations/upsert"

_MARK: LiteralString = "SELECT last_mark FROM opendata_push_state WHERE stream = %s"
_SET_MARK: LiteralString = """
INSERT INTO opendata_push_state (stream, last_mark) VALUES (%s, %s)
ON CONFLICT (stream) DO UPDATE SET last_mark = EXCLUDED.last_mark, updated_at = now()
"""
_QUEUE: LiteralString = "INSERT INTO opendata_push_outbox (stream, entities) VALUES (%s, %s)"
_SENT: LiteralString = "INSERT INTO opendata_push_sent (entity_key) VALUES (%s) ON CONFLICT DO NOTHING"
_NEW_OPEN: LiteralString = """
SELECT incident_id, camera_id, type, severity, started_at FROM incidents i
WHERE state = 'open' AND camera_id = ANY(%(cams)s)
  AND NOT EXISTS (SELECT 1 FROM opendata_push_sent s WHERE s.entity_key = 'alert:' || i.incident_id)
ORDER BY started_at
"""
_NEW_ACCIDENTS: LiteralString = """
SELECT incident_id, camera_id, type, started_at, classes FROM incidents i
WHERE workflow_state = 'resolved' AND type = ANY(%(types)s) AND camera_id = ANY(%(cams)s)
  AND NOT EXISTS (SELECT 1 FROM opendata_push_sent s WHERE s.entity_key = 'accident:' || i.incident_id)
ORDER BY started_at
"""
_DUE: LiteralString = """
SELECT id, stream, entities, attempts FROM opendata_push_outbox
WHERE NOT dead AND next_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_DONE: LiteralString = "DELETE FROM opendata_push_outbox WHERE id = %s"
_FAILED: LiteralString = """
UPDATE opendata_push_outbox
SET attempts = %(attempts)s, last_error = %(error)s, dead = %(dead)s,
    next_at = now() + make_interval(secs => %(delay)s)
WHERE id = %(id)s
"""


def _chunks(items: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


async def queue_hours(pool: Any, site: SiteConfig, broker: ContextBroker, now: datetime) -> int:
    """Queue every closed hour after the stream's mark; returns the number of hours queued."""
    tz = ZoneInfo(site.site.timezone)
    cams = [c.id for c in site.cameras]
    closed = (now - timedelta(seconds=broker.close_after_s)).astimezone(UTC)
    closed = closed.replace(minute=0, second=0, microsecond=0)  # end of the last closed hour (UTC hours)
    hours = 0
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute(_MARK, ("flow-1h",))
            row = await cur.fetchone()
        mark: datetime = row[0] if row else closed - timedelta(hours=broker.backfill_hours + 1)
        hour = mark + timedelta(hours=1)
        while hour < closed:
            page = await public_cells(
                conn, cameras=cams, start=hour, end=hour + timedelta(hours=1), g="1h", tz=tz, k=1,
                until=closed,
            )  # fmt: skip
            entities = [
                ngsi.flow_entity(site, c, "1h", "normalized") for c in page.cells if ngsi.is_vehicle(c)
            ]
            async with conn.transaction(), conn.cursor() as cur:
                for part in _chunks(entities, broker.batch):
                    await cur.execute(_QUEUE, ("flow-1h", Jsonb(part)))
                await cur.execute(_SET_MARK, ("flow-1h", hour))
            hours += 1
            hour += timedelta(hours=1)
    return hours


async def queue_incidents(pool: Any, site: SiteConfig, broker: ContextBroker) -> int:
    """Queue open traffic incidents as Alert and resolved accidents as RoadAccident, each once."""
    cams = [c.id for c in site.cameras]
    n = 0
    async with pool.connection() as conn:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_NEW_OPEN, {"cams": cams})
            open_rows = await cur.fetchall()
            await cur.execute(_NEW_ACCIDENTS, {"cams": cams, "types": sorted(ngsi.ACCIDENT_TYPES)})
            accidents = await cur.fetchall()
        work: list[tuple[str, str, dict[str, Any] | None]] = [
            ("alert", f"alert:{r['incident_id']}", ngsi.alert_entity(site, r, "normalized"))
            for r in open_rows
        ] + [
            ("accident", f"accident:{r['incident_id']}", ngsi.accident_entity(site, r, "normalized"))
            for r in accidents
        ]
        for stream, key, entity in work:
            async with conn.transaction(), conn.cursor() as cur:
                if entity is not None:  # non-traffic types are only marked as seen
                    await cur.execute(_QUEUE, (stream, Jsonb([entity])))
                    n += 1
                await cur.execute(_SENT, (key,))
    return n


async def deliver(
    pool: Any, broker: ContextBroker, client: httpx.AsyncClient, limit: int = 50
) -> tuple[int, int]:
    """Send due outbox rows; returns (delivered, failed)."""
    url = str(broker.url).rstrip("/") + UPSERT_PATH
    headers = {"Content-Type": LD_JSON, "Accept": "application/json"}
    if broker.tenant:
        headers["NGSILD-Tenant"] = broker.tenant
    if broker.token is not None:
        headers["Authorization"] = f"Bearer {broker.token.get_secret_value()}"
    ok = failed = 0
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.execute(_DUE, (limit,))
        for row_id, stream, entities, attempts in await cur.fetchall():
            error = ""
            try:
                r = await client.post(url, json=entities, headers=headers, timeout=broker.timeout_s)
                if r.status_code not in (200, 201, 204):  # 207: some entities failed
                    error = f"HTTP {r.status_code}: {r.text[:300]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not error:
                await cur.execute(_DONE, (row_id,))
                ok += 1
                continue
            failed += 1
            tries = attempts + 1
            dead = tries >= broker.max_attempts
            delay = broker.backoff_s * 2 ** (tries - 1)
            await cur.execute(
                _FAILED, {"attempts": tries, "error": error, "dead": dead, "delay": delay, "id": row_id}
            )
            if dead:
                log.error(
                    "open data push: batch %d (%s) dead after %d tries: %s", row_id, stream, tries, error
                )
            else:
                log.warning("open data push: batch %d (%s) failed (try %d): %s", row_id, stream, tries, error)
    return ok, failed


async def run_once(
    pool: Any, site: SiteConfig, client: httpx.AsyncClient, now: datetime | None = None
) -> None:
    broker = site.open_data.broker
    if broker is None:
        return
    await queue_hours(pool, site, broker, now or datetime.now(UTC))
    await queue_incidents(pool, site, broker)  # agencies get incidents whatever the public setting
    while True:
        ok, failed = await deliver(pool, broker, client)
        if not ok or failed:
            break


async def run_forever(pool: Any, site: SiteConfig) -> None:
    """The scheduled pusher: queue and deliver every ``interval_s``; errors logged, then retried."""
    broker = site.open_data.broker
    assert broker is not None
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await run_once(pool, site, client)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("open data push failed; retrying in %.0f s", broker.interval_s)
            await asyncio.sleep(broker.interval_s)
