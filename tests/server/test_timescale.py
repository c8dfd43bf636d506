"""TimescaleDB tier: every migration, policy and history query on a real PostgreSQL 15 with TimescaleDB
2.28 preloaded (the cluster scripts/timescaledb.sh builds and starts on 127.0.0.1:5433), with small data;
and the same history API answers from both backends on the same data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from contract import Movement
from server.app import create_app
from server.db.backend_header import HEADER
from server.db.migrate import migrate
from server.db.timescale import ROLLUPS, apply_policies, refresh
from server.history import queries
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.server.helpers import counts, login, write_site
from tests.server.history_data import START, TZ, expected_volume, generate, store
from tests.server.test_writer import acc

pytestmark = [pytest.mark.timescale, pytest.mark.integration]
SITE = "tsdb"
CAMS = ["cam-t1", "cam-t2", "cam-t3"]
MSGS = generate(SITE, CAMS)
END = START + timedelta(days=2)


def _wait_for_first_refreshes(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The refresh policies start at once in the background; answers read while one is materializing
    were seen to be off (1 run in 4) on TimescaleDB 2.28, so the tests read after the first runs."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE s.total_runs > 0 AND s.job_status <> 'Running'), count(*) "
            "FROM timescaledb_information.jobs j JOIN timescaledb_information.job_stats s USING (job_id) "
            "WHERE j.proc_name = 'policy_refresh_continuous_aggregate'"
        ).fetchone()
        if row is not None and row[1] == len(ROLLUPS) and row[0] == row[1]:
            return
        time.sleep(0.2)
    raise AssertionError("the refresh policies did not run within 120 s")


@pytest.fixture(scope="module")
def loaded(fresh_ts_db: str) -> str:
    with psycopg.connect(fresh_ts_db, autocommit=True) as conn:
        result = migrate(conn, "Asia/Ho_Chi_Minh", "on")
        assert result.backend == "timescale"
        assert {
            "0001_core",
            "0003_timescale",
            "0006_bin_totals_timescale",
            "0008_movements_timescale",
            "0012_chunk_intervals",
        } <= set(result.applied)
        assert {"0002_rollup_tables", "0005_bin_totals_rollups"} <= set(result.skipped)
        store(conn, BatchWriter("timescale", "Asia/Ho_Chi_Minh"), MSGS, chunk=100)
        # After the data: a policy's first run moving an aggregate's watermark across bins that are
        # being inserted at that moment can miss them (see docs/server.md); live bins are never there.
        apply_policies(conn, Settings.from_env({"CITYWATCH_TS_RAW_RETENTION": "3 years"}))
        _wait_for_first_refreshes(conn)
    return fresh_ts_db


def test_timescale_objects_exist(loaded: str) -> None:
    with psycopg.connect(loaded, autocommit=True) as conn:
        hypertables = {
            r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        assert {"counts", "count_bins", "movements", "heartbeats", "camera_status"} <= hypertables
        intervals: dict[str, timedelta] = dict(
            conn.execute(
                "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions "
                "WHERE hypertable_name IN ('counts', 'count_bins', 'movements')"
            ).fetchall()
        )
        assert set(intervals.values()) == {timedelta(days=1)}, intervals  # 0012
        caggs = {
            r[0] for r in conn.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates")
        }
        assert caggs == set(ROLLUPS)
        jobs = {
            (r[0], r[1])
            for r in conn.execute("SELECT proc_name, hypertable_name FROM timescaledb_information.jobs")
        }
        assert ("policy_compression", "counts") in jobs
        assert ("policy_retention", "counts") in jobs
        assert ("policy_retention", "movements") in jobs
        assert sum(1 for j in jobs if j[0] == "policy_refresh_continuous_aggregate") == len(ROLLUPS)


def _rows(rows: list[queries.VolumeRow]) -> dict[tuple[Any, ...], int]:
    return {(r.camera_id, r.bucket, r.line_id, r.direction, r.cls): r.count for r in rows if r.count}


async def _all_queries(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for g in ("15m", "1h", "1d"):
            for source in ("rollup", "raw"):
                rows = await queries.volume(
                    conn, cameras=CAMS, start=START, end=END, g=g, tz=TZ, source=source
                )
                assert _rows(rows) == expected_volume(MSGS, g), (g, source)
                rows = await queries.volume(
                    conn, cameras=CAMS, start=START, end=END, g=g, tz=TZ, source=source, dims=()
                )
                assert _rows(rows) == expected_volume(MSGS, g, []), (g, source, "camera totals")
        hourly = await queries.volume(conn, cameras=CAMS, start=START, end=END, g="1h", tz=TZ)
        q = {
            (r.camera_id, r.bucket.astimezone(TZ).day, r.bucket.astimezone(TZ).hour): r.quality
            for r in hourly
        }
        assert q[("cam-t3", START.day + 1, 11)] == "no_data"
        assert q[("cam-t2", START.day, 8)] == "degraded"
        hours = await queries.hourly_totals(conn, CAMS, START, END)
        assert sum(hours.values()) == sum(expected_volume(MSGS, "1d").values())
        totals = await queries.totals(conn, CAMS, START, END)
        assert totals == {
            (cam, cls): sum(
                v for k, v in expected_volume(MSGS, "1d", ["cls"]).items() if k[0] == cam and k[4] == cls
            )
            for cam in CAMS
            for cls in ("car", "motorcycle")
        }
        assert await queries.incident_counts(conn, CAMS, START, END) == []


def test_history_queries_match_raw_sums_realtime(loaded: str) -> None:
    """Before any refresh: real-time aggregation answers from the raw hypertable."""
    asyncio.run(_all_queries(loaded))


def test_history_queries_match_raw_sums_after_refresh(loaded: str) -> None:
    with psycopg.connect(loaded, autocommit=True) as conn:
        for view in ROLLUPS:
            refresh(conn, view)
        materialized = conn.execute("SELECT count(*) FROM _timescaledb_catalog.continuous_agg").fetchone()
        assert materialized is not None and materialized[0] == len(ROLLUPS)
    asyncio.run(_all_queries(loaded))


def test_movements_are_stored_once_in_their_hypertable(loaded: str) -> None:
    msg = counts(SITE, "cam-tm", 1, START, bin_s=300).model_copy(
        update={"movements": [Movement(junction_id="j1", from_line="L1", to_line="L2", cls="car", count=3)]}
    )
    writer = BatchWriter("timescale", "Asia/Ho_Chi_Minh")
    with psycopg.connect(loaded, autocommit=True) as conn:
        writer.write(conn, [acc(msg)])
        writer.write(conn, [acc(msg)])  # redelivered

    async def read() -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(loaded, autocommit=True) as conn:
            return await queries.movement_counts(conn, ["cam-tm"], START, END)

    assert asyncio.run(read()) == [
        {
            "camera_id": "cam-tm",
            "junction_id": "j1",
            "from_line": "L1",
            "to_line": "L2",
            "cls": "car",
            "count": 3,
        }
    ]


def _volume_1h(dsn: str, cams: list[str]) -> dict[tuple[Any, ...], int]:
    async def read() -> dict[tuple[Any, ...], int]:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            rows = await queries.volume(conn, cameras=cams, start=START, end=END, g="1h", tz=TZ)
            return _rows(rows)

    return asyncio.run(read())


def test_late_and_resent_bins_update_materialized_aggregates(loaded: str) -> None:
    """Below an aggregate's watermark real-time aggregation reads the materialization, which a late bin
    only invalidates: the writer refreshes it after commit, so the answer includes the bin at once."""
    cam = "cam-late"
    with psycopg.connect(loaded, autocommit=True) as conn:
        writer = BatchWriter("timescale", "Asia/Ho_Chi_Minh")
        writer.write(
            conn, [acc(counts(SITE, cam, 1, START + timedelta(hours=2), {("L1", "north", "car"): 4}))]
        )
        for view in ROLLUPS:
            refresh(conn, view)  # everything materialized: the late bins below are under every watermark
        late = counts(SITE, cam, 2, START + timedelta(hours=2, minutes=5), {("L1", "north", "car"): 6})
        resent = counts(SITE, cam, 3, START + timedelta(hours=2), {("L1", "north", "car"): 50})  # new id
        writer.write(conn, [acc(late)])
        writer.write(conn, [acc(resent)])
        writer.write(conn, [acc(late)])  # redelivered
        totals = conn.execute("SELECT sum(total) FROM count_bins_1d WHERE camera_id = %s", (cam,)).fetchone()
    bucket = START + timedelta(hours=2)
    assert _volume_1h(loaded, [cam]) == {(cam, bucket, "L1", "north", "car"): 10}
    assert totals == (10,)


def test_without_the_refresh_a_late_bin_is_missing(loaded: str) -> None:
    """Control: the same late bin written without the refresh is invisible (so the test above can fail)."""
    cam = "cam-late2"
    with psycopg.connect(loaded, autocommit=True) as conn:
        writer = BatchWriter("timescale", "Asia/Ho_Chi_Minh", refresh_late_bins=False)
        writer.write(
            conn, [acc(counts(SITE, cam, 1, START + timedelta(hours=3), {("L1", "north", "car"): 4}))]
        )
        for view in ROLLUPS:
            refresh(conn, view)
        writer.write(
            conn,
            [acc(counts(SITE, cam, 2, START + timedelta(hours=3, minutes=5), {("L1", "north", "car"): 6}))],
        )
    assert _volume_1h(loaded, [cam]) == {(cam, START + timedelta(hours=3), "L1", "north", "car"): 4}


@pytest.fixture(scope="module")
def plain_loaded(fresh_db: str) -> str:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert migrate(conn, "Asia/Ho_Chi_Minh").backend == "plain"
        store(conn, BatchWriter("plain", "Asia/Ho_Chi_Minh"), MSGS, chunk=100)
    return fresh_db


def _client(dsn: str, folder: Path) -> Iterator[TestClient]:
    site_path = write_site(folder, SITE, "cwts", CAMS)
    settings = Settings.from_env({"DATABASE_URL": dsn, "CITYWATCH_SITE": str(site_path)})
    with TestClient(create_app(settings, load_site(site_path), ingest=False)) as c:
        login(c, dsn)
        yield c


API_QUERIES: list[tuple[str, dict[str, Any]]] = [
    *[
        ("/api/v1/history/volume", {"bin": g, "source": src, **extra})
        for g in ("15m", "1h", "1d")
        for src in ("rollup", "raw")
        for extra in ({}, {"group_by": "camera"})
    ],
    ("/api/v1/history/peak-hours", {}),
    ("/api/v1/history/incidents", {}),
    ("/api/v1/history/turning-movements", {}),
]


def test_both_backends_give_the_same_api_answers(
    loaded: str, plain_loaded: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same data on plain PostgreSQL and on TimescaleDB: every history answer is equal, and the
    ``X-Citywatch-Backend`` header tells which backend answered."""
    span = {"start": START.isoformat(), "end": END.isoformat()}
    compare = {
        "a_start": START.isoformat(),
        "a_end": (START + timedelta(days=1)).isoformat(),
        "b_start": (START + timedelta(days=1)).isoformat(),
        "b_end": END.isoformat(),
    }
    answers: dict[str, list[Any]] = {}
    for backend, dsn in (("timescale", loaded), ("plain", plain_loaded)):
        for client in _client(dsn, tmp_path_factory.mktemp(backend)):
            got = []
            for path, params in [
                *((p, {**span, **q}) for p, q in API_QUERIES),
                ("/api/v1/history/compare", compare),
            ]:
                r = client.get(path, params=params)
                assert r.status_code == 200, (backend, path, params, r.text)
                assert r.headers[HEADER] == backend
                got.append(r.json())
            answers[backend] = got
    assert answers["timescale"] == answers["plain"]
    assert any(row.get("count") for row in answers["plain"][0]["rows"])  # not a comparison of empties
