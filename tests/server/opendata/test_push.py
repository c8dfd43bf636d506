"""Pushes to a context broker: each closed hour as TrafficFlowObserved, open incidents as Alert,
resolved accidents as anonymised RoadAccident; retries, at-least-once, dead letters. The broker is a
local HTTP receiver that checks the request shape and every entity against the shared schemas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig, load_site
from contract import IncidentEvent, IncidentType
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.opendata import push
from tests.server.helpers import incident
from tests.server.history_data import store
from tests.server.opendata import schemas
from tests.server.opendata.data import expected, generate, site_file
from tests.server.opendata.receiver import Broker, running_broker
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE, CAMS = "odpush", ["cam-p1", "cam-p2"]
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
MSGS = [m for m in generate(SITE, CAMS, NOW, seed=3) if m.bin_start >= NOW - timedelta(hours=5)]


@pytest.fixture(scope="module")
def db(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    site = load_site(site_file(tmp_path_factory.mktemp("s"), SITE, CAMS, ""))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone, "off")
        writer = BatchWriter("plain", site.site.timezone)
        store(conn, writer, MSGS)
        jam = incident(SITE, "cam-p1", 90_001, uuid.uuid4(), IncidentEvent.START, NOW - timedelta(minutes=20))
        writer.write(
            conn, [acc(jam.model_copy(update={"type": IncidentType.CONGESTION, "track_ids": [7, 8]}))]
        )
        # an accident (operators classify these), resolved
        crash = uuid.uuid4()
        writer.write(
            conn,
            [acc(incident(SITE, "cam-p2", 90_002, crash, IncidentEvent.START, NOW - timedelta(hours=2)))],
        )
        conn.execute(
            "UPDATE incidents SET type = 'accident', state = 'closed', workflow_state = 'resolved', "
            "classes = '{car,motorcycle}', track_ids = '{41,42}' WHERE incident_id = %s",
            (crash,),
        )
    return fresh_db


def _reset(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("TRUNCATE opendata_push_state, opendata_push_sent, opendata_push_outbox")


@pytest.fixture
def broker(db: str) -> Iterator[Broker]:
    _reset(db)
    with running_broker() as b:
        yield b


def _site(tmp: Any, url: str, extra: str = "") -> SiteConfig:
    od = f"open_data:\n  broker: {{url: '{url}', tenant: city, backfill_hours: 3, backoff_s: 0.01{extra}}}\n"
    return load_site(site_file(tmp, SITE, CAMS, od))


async def _run(db: str, site: SiteConfig, times: int = 1) -> None:
    async with (
        AsyncConnectionPool(db, open=False, kwargs={"autocommit": True}) as pool,
        httpx.AsyncClient() as c,
    ):
        for _ in range(times):
            await push.run_once(pool, site, c, now=NOW)
            await asyncio.sleep(0.05)


def _outbox(db: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT stream, attempts, dead, last_error FROM opendata_push_outbox").fetchall()


def test_closed_hours_incidents_and_accidents_arrive_valid(db: str, broker: Broker, tmp_path: Any) -> None:
    ok, why = schemas.models_present()
    if not ok:
        pytest.skip(why)
    asyncio.run(_run(db, _site(tmp_path, broker.url)))
    assert broker.problems == []
    assert _outbox(db) == []
    flows = [e for e in broker.entities if e["type"] == "TrafficFlowObserved"]
    # the three closed hours before NOW's hour; NOW's own hour is still open
    hours = {e["dateObservedFrom"]["value"]["@value"] for e in flows}
    want_hours = {
        (NOW.replace(minute=0) - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (1, 2, 3)
    }
    assert hours == want_hours
    # exact counts for agencies (no k), vehicles only
    truth = expected(MSGS, "1h")
    for e in flows:
        b = datetime.fromisoformat(e["dateObservedFrom"]["value"]["@value"])
        cls = {"lorry": "truck"}.get(e["vehicleType"]["value"], e["vehicleType"]["value"])
        key = (e["cameraId"]["value"], b, e["lineId"]["value"], e["direction"]["value"], cls)
        assert truth[key] == e["intensity"]["value"]
    assert {e["type"] for e in broker.entities} == {"TrafficFlowObserved", "Alert", "RoadAccident"}
    alert = next(e for e in broker.entities if e["type"] == "Alert")
    assert alert["subCategory"]["value"] == "trafficJam"
    accident = next(e for e in broker.entities if e["type"] == "RoadAccident")
    assert accident["vehiclesInvolved"]["value"] == ["5", "14"]
    assert all(h.get("NGSILD-Tenant") == "city" for h in broker.headers)
    # a second run sends nothing new
    before = broker.requests
    asyncio.run(_run(db, _site(tmp_path, broker.url)))
    assert broker.requests == before


def test_failures_are_retried_until_delivered(db: str, broker: Broker, tmp_path: Any) -> None:
    broker.fail_next = 3
    site = _site(tmp_path, broker.url)
    asyncio.run(_run(db, site, times=1))
    assert broker.requests >= 3
    assert any(attempts >= 1 for _s, attempts, _d, _e in _outbox(db))
    asyncio.run(_run(db, site, times=6))
    assert _outbox(db) == []
    assert broker.problems == []
    assert any(e["type"] == "Alert" for e in broker.entities)


def test_dead_letter_after_the_last_attempt(db: str, broker: Broker, tmp_path: Any) -> None:
    broker.always_fail = True
    site = _site(tmp_path, broker.url, ", max_attempts: 2")
    asyncio.run(_run(db, site, times=4))
    rows = _outbox(db)
    assert rows
    assert all(dead and attempts == 2 and "HTTP 503" in err for _s, attempts, dead, err in rows)
    n = broker.requests
    asyncio.run(_run(db, site, times=2))
    assert broker.requests == n  # dead letters are not retried


def test_unreachable_broker_is_retried_not_lost(db: str, tmp_path: Any) -> None:
    _reset(db)
    site = _site(tmp_path, "http://127.0.0.1:9")  # discard port: nothing listens
    asyncio.run(_run(db, site))
    rows = _outbox(db)
    assert rows
    assert all(not dead and attempts == 1 and "ConnectError" in err for _s, attempts, dead, err in rows)
