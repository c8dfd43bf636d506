"""The public cells: counts per camera, line, direction, class and hour or day, after the privacy
rules (publication delay, small cells suppressed), each flagged when it comes from sample data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection, sql

from server.history.bins import floor_bucket, next_bucket
from server.ingest.statements import BUCKETS

PublicBin = Literal["1h", "1d"]
AConn = AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class Cell:
    camera_id: str
    bucket: datetime  # UTC start
    bucket_end: datetime
    line_id: str
    direction: str
    cls: str
    count: int
    sample: bool


@dataclass(frozen=True, slots=True)
class CellPage:
    cells: list[Cell]
    suppressed: int  # cells with 0 < count < k left out
    published_until: datetime  # buckets ending after this are not public yet


def published_until(now: datetime, g: PublicBin, delay: timedelta, tz: Any) -> datetime:
    """The end of the last bucket that ended at least ``delay`` before ``now``."""
    return floor_bucket(now - delay, g, tz)


def suppress(rows: Sequence[tuple[Any, ...]], k: int) -> tuple[list[tuple[Any, ...]], int]:
    """Keep rows whose count (last column) is 0 or at least ``k``; zero rows are dropped too (only
    non-zero cells are stored, so a missing cell means zero or suppressed). Pure."""
    kept = [r for r in rows if r[-1] >= k]
    return kept, sum(1 for r in rows if 0 < r[-1] < k)


async def public_cells(
    conn: AConn,
    *,
    cameras: Sequence[str],
    start: datetime,
    end: datetime,
    g: PublicBin,
    tz: Any,
    k: int,
    until: datetime,
) -> CellPage:
    """Cells of buckets starting in ``[floor(start), min(end, until))``, small ones suppressed."""
    lo = floor_bucket(start, g, tz)
    hi = min(end, until)
    if hi <= lo or not cameras:
        return CellPage([], 0, until)
    params = {"start": lo, "end": hi, "cams": list(cameras), "tz": tz.key}
    query = sql.SQL(
        "SELECT camera_id, bucket, line_id, direction, cls, count FROM {table} "
        "WHERE bucket >= %(start)s AND bucket < %(end)s AND camera_id = ANY(%(cams)s) "
        "ORDER BY bucket, camera_id, line_id, direction, cls"
    ).format(table=sql.Identifier(f"counts_{g}"))
    # `sample::int = 1`, not `sample`: TimescaleDB (2.23) fails with "unexpected column type 'boolean'"
    # filtering a boolean column added after a chunk was compressed (tests/server/opendata/
    # test_timescale_opendata.py); the cast keeps the filter off that path.
    flags = sql.SQL(
        "SELECT camera_id, {bucket} AS bucket FROM count_bins "
        "WHERE bin_start >= %(start)s AND bin_start < %(end)s AND camera_id = ANY(%(cams)s) "
        "AND sample::int = 1 GROUP BY 1, 2"
    ).format(bucket=sql.SQL(BUCKETS[g]))
    async with conn.cursor(binary=True) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
        await cur.execute(flags, params)
        sample = {(r[0], int(r[1].timestamp())) for r in await cur.fetchall()}
    kept, dropped = suppress(rows, k)
    ends: dict[datetime, datetime] = {}
    out: list[Cell] = []
    for cam, b, line, direction, cls, count in kept:
        e = ends.get(b)
        if e is None:
            e = ends[b] = next_bucket(b, g, tz)
        out.append(Cell(cam, b, e, line, direction, cls, int(count), (cam, int(b.timestamp())) in sample))
    return CellPage(out, dropped, until)
