"""Denial of service through the history API: an oversized request is refused with a 422 (or 403 for
raw scans by non-admins) *before any query runs*.

"No query ran" is shown without timing: every table a history query reads is locked ACCESS EXCLUSIVE by
another session while the request is made, and the app's sessions have a short ``lock_timeout``. A
request that ran a query on them would fail with a lock timeout instead of answering. On main these
requests ran (a year of 15-minute bins, a 60-day raw scan, five years of peak hours...), so they hit the
lock and failed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from server.api.export import table_response_async
from tests.server.history_data import START
from tests.server.security_history.common import Headers, migrated, serve, write_site

pytestmark = pytest.mark.integration
SITE = "dos"
CAMS = ["cam-d1", "cam-d2", "cam-d3"]
READ_TABLES = [
    "counts",
    "count_bins",
    *(f"{t}_{g}" for t in ("counts", "count_bins") for g in ("15m", "1h", "1d")),
    "movements",
    "incidents",
    "camera_status",
]
DAY = timedelta(days=1)


def iso(days: float) -> str:
    return (START + days * DAY).isoformat()


@pytest.fixture(scope="module")
def app(
    fresh_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, Headers], str]]:
    path = write_site(tmp_path_factory.mktemp("site"), SITE, CAMS)
    migrated(fresh_db, path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # Sessions opened from now on (the app's pool) give up on a lock after 2 s instead of hanging.
        name = conn.info.dbname
        conn.execute(sql.SQL("ALTER DATABASE {} SET lock_timeout = '2s'").format(sql.Identifier(name)))
    with serve(fresh_db, path) as (client, headers):
        yield client, headers, fresh_db


@pytest.fixture
def tables_locked(app: tuple[TestClient, dict[str, Headers], str]) -> Iterator[None]:
    """Every table a history query reads, locked by another session for the test's duration."""
    dsn = app[2]
    with psycopg.connect(dsn) as holder:
        holder.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in READ_TABLES)
            )
        )
        # The lock is real: a reader gives up.
        with psycopg.connect(dsn, autocommit=True) as probe:
            probe.execute("SET lock_timeout = '50ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                probe.execute("SELECT count(*) FROM counts_15m")
        yield
        holder.rollback()


OVERSIZED = [
    # (role, path, params, status, words in the message)
    ("planner", "/api/v1/history/volume", {"start": iso(0), "end": iso(365), "bin": "15m"}, 422, "cells"),
    ("admin", "/api/v1/history/volume", {"start": iso(0), "end": iso(3 * 365), "bin": "1d"}, 422, "days"),
    ("admin", "/api/v1/history/volume", {"start": iso(0), "end": iso(60), "source": "raw"}, 422, "raw"),
    ("operator", "/api/v1/history/volume", {"start": iso(0), "end": iso(1), "source": "raw"}, 403, "admins"),
    ("planner", "/api/v1/history/volume", {"start": iso(0), "end": iso(1), "source": "raw"}, 403, "admins"),
    ("planner", "/api/v1/history/peak-hours", {"start": iso(0), "end": iso(5 * 365)}, 422, "days"),
    (
        "planner",
        "/api/v1/history/compare",
        {"a_start": iso(0), "a_end": iso(7), "b_start": iso(0), "b_end": iso(2 * 365)},
        422,
        "days",
    ),
    ("planner", "/api/v1/history/turning-movements", {"start": iso(0), "end": iso(60)}, 422, "days"),
    ("planner", "/api/v1/history/incidents", {"start": iso(0), "end": iso(2 * 365)}, 422, "days"),
    ("planner", "/api/v1/sla", {"start": iso(0), "end": iso(2 * 365)}, 422, "days"),
    ("police", "/api/v1/sla", {"start": iso(0), "end": iso(2 * 365)}, 422, "days"),
]


@pytest.mark.parametrize(
    ("role", "path", "params", "code", "words"),
    OVERSIZED,
    ids=[f"{o[0]}-{o[1].rsplit('/', 1)[1]}-{i}" for i, o in enumerate(OVERSIZED)],
)
@pytest.mark.usefixtures("tables_locked")
def test_oversized_refused_before_any_query(
    app: tuple[TestClient, dict[str, Headers], str],
    role: str,
    path: str,
    params: dict[str, str],
    code: int,
    words: str,
) -> None:
    client, headers, _ = app
    r = client.get(path, params=params, headers=headers[role])
    assert r.status_code == code, r.text
    assert words in r.text


@pytest.mark.parametrize(
    ("role", "path", "params"),
    [
        ("planner", "/api/v1/history/volume", {"start": iso(0), "end": iso(365), "bin": "1d"}),
        (
            "planner",
            "/api/v1/history/volume",
            {"start": iso(0), "end": iso(90), "bin": "15m", "camera_id": "cam-d1"},
        ),
        ("admin", "/api/v1/history/volume", {"start": iso(0), "end": iso(31), "source": "raw"}),
        ("planner", "/api/v1/history/peak-hours", {"start": iso(0), "end": iso(365)}),
        ("planner", "/api/v1/history/turning-movements", {"start": iso(0), "end": iso(31)}),
    ],
)
def test_requests_within_the_limits_are_answered(
    app: tuple[TestClient, dict[str, Headers], str], role: str, path: str, params: dict[str, str]
) -> None:
    client, headers, _ = app
    r = client.get(path, params=params, headers=headers[role])
    assert r.status_code == 200, r.text


class _ThreadRecorder:
    """A cell value that notes the thread that renders it (CSV calls ``str`` on each cell)."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def __str__(self) -> str:
        self.threads.append(threading.get_ident())
        return "x"


def test_csv_bodies_are_built_off_the_event_loop() -> None:
    """On main ``table_response`` built the whole body on the event loop, stalling every request."""
    cell = _ThreadRecorder()

    async def build() -> int:
        await table_response_async([{"v": cell}] * 3, ["v"], fmt="csv", tz=ZoneInfo("UTC"), meta={}, name="t")
        return threading.get_ident()

    loop_thread = asyncio.run(build())
    assert len(cell.threads) == 3 and loop_thread not in cell.threads
