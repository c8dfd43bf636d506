"""Open data on TimescaleDB (the tests' own cluster): migration 0011 applies to a database whose
count_bins hypertable already has compressed chunks (an upgrade), and the public cells (continuous
aggregates plus the sample flag) equal the sums of the raw data, small cells suppressed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from server.db.migrate import load_migrations, migrate
from server.db.timescale import apply_policies
from server.ingest.writer import BatchWriter
from server.opendata.cells import public_cells
from server.settings import Settings
from tests.server.history_data import START, TZ, expected_volume, generate, store

pytestmark = pytest.mark.timescale
CAMS = ["cam-ts1", "cam-ts2"]
MSGS = generate("odts", CAMS, days=1)
K = 30  # hourly cells sum 12 bins of 0..5: about half fall below


def _upgrade(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        before = [m for m in load_migrations() if m.version < 11]
        migrate(conn, "Asia/Ho_Chi_Minh", "on", before)
        apply_policies(conn, Settings.from_env({}))
        store(conn, BatchWriter("timescale", "Asia/Ho_Chi_Minh"), MSGS, chunk=100)
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('count_bins') AS c")
        applied = migrate(conn, "Asia/Ho_Chi_Minh", "on").applied
        conn.execute(
            "UPDATE count_bins SET sample = true WHERE camera_id = 'cam-ts1' AND bin_start < %s",
            (START + timedelta(hours=12),),
        )
    return applied


async def _cells(url: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, prepare_threshold=None, options="-c TimeZone=UTC"
    ) as conn:
        page = await public_cells(
            conn, cameras=CAMS, start=START, end=START + timedelta(days=1), g="1h", tz=TZ, k=K,
            until=datetime.now(UTC),
        )  # fmt: skip
    return [(c.camera_id, c.bucket, c.line_id, c.direction, c.cls, c.count, c.sample) for c in page.cells]


def test_open_data_on_timescale(fresh_ts_db: str) -> None:
    assert "0011_open_data" in _upgrade(fresh_ts_db)
    got = asyncio.run(_cells(fresh_ts_db))
    want = {k: v for k, v in expected_volume(MSGS, "1h").items() if v >= K}
    assert {c[:5]: c[5] for c in got} == want
    assert any(v < K for v in expected_volume(MSGS, "1h").values())
    noon = START + timedelta(hours=12)
    assert all(c[6] == (c[0] == "cam-ts1" and c[1] < noon) for c in got)  # type: ignore[operator]
