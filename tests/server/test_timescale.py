"""Every migration and every history query on TimescaleDB (PostgreSQL 17 + TimescaleDB 2.23 in WASM,
PGlite, served on a loopback port by server/timescale_pglite.mjs), with small data.

All connections share PGlite's single backend, so psycopg's automatic prepared statements are off
(their names would clash between connections)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contract import Movement
from server.db.migrate import migrate
from server.db.timescale import ROLLUPS, apply_policies
from server.history import queries
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.conftest import in_ci
from tests.mosquitto import free_port
from tests.server.helpers import counts
from tests.server.history_data import START, TZ, expected_volume, generate, store
from tests.server.test_writer import acc

pytestmark = pytest.mark.timescale
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "server" / "timescale_pglite.mjs"
SITE = "tsdb"
CAMS = ["cam-t1", "cam-t2", "cam-t3"]
MSGS = generate(SITE, CAMS)
END = START + timedelta(days=2)


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        reason = "needs Node and the npm packages of package.json (`npm install --legacy-peer-deps`)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    proc = subprocess.Popen(
        [node, str(SCRIPT), str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = b""
    while time.monotonic() < deadline and b"READY" not in line:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail(f"PGlite server exited: {proc.returncode}")
    try:
        yield f"postgresql://postgres:any@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def loaded(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        result = migrate(conn, "Asia/Ho_Chi_Minh", "on")
        assert result.backend == "timescale"
        assert result.applied == [
            "0001_core",
            "0003_timescale",
            "0004_bin_totals",
            "0006_bin_totals_timescale",
            "0007_movements",
            "0008_movements_timescale",
            "0009_auth_alerting",
            "0010_app_role",
            "0011_open_data",
        ]
        assert result.skipped == ["0002_rollup_tables", "0005_bin_totals_rollups"]
        apply_policies(conn, Settings.from_env({"CITYWATCH_TS_RAW_RETENTION": "3 years"}))
        store(conn, BatchWriter("timescale", "Asia/Ho_Chi_Minh"), MSGS, chunk=100)
    return dsn


def test_timescale_objects_exist(loaded: str) -> None:
    with psycopg.connect(loaded, autocommit=True, prepare_threshold=None) as conn:
        hypertables = {
            r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        assert {"counts", "count_bins", "movements", "heartbeats", "camera_status"} <= hypertables
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
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
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
    with psycopg.connect(loaded, autocommit=True, prepare_threshold=None) as conn:
        for view in ROLLUPS:
            conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (view,))
        materialized = conn.execute("SELECT count(*) FROM _timescaledb_catalog.continuous_agg").fetchone()
        assert materialized is not None and materialized[0] == len(ROLLUPS)
    asyncio.run(_all_queries(loaded))


def test_movements_are_stored_once_in_their_hypertable(loaded: str) -> None:
    msg = counts(SITE, "cam-tm", 1, START, bin_s=300).model_copy(
        update={"movements": [Movement(junction_id="j1", from_line="L1", to_line="L2", cls="car", count=3)]}
    )
    writer = BatchWriter("timescale", "Asia/Ho_Chi_Minh")
    with psycopg.connect(loaded, autocommit=True, prepare_threshold=None) as conn:
        writer.write(conn, [acc(msg)])
        writer.write(conn, [acc(msg)])  # redelivered

    async def read() -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(
            loaded, autocommit=True, prepare_threshold=None
        ) as conn:
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
