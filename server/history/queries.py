"""History SQL over the rollups (``counts_15m/1h/1d``: tables on PostgreSQL, continuous aggregates on
TimescaleDB, the same columns) or over the raw rows, with the same answers either way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from server.history.bins import (
    Granularity,
    Quality,
    bucket_range,
    health_flags,
    next_bucket,
    offline_seconds,
    quality,
)
from server.ingest.statements import BUCKETS

Dim = Literal["line_id", "direction", "cls"]
ALL_DIMS: tuple[Dim, ...] = ("line_id", "direction", "cls")
Source = Literal["rollup", "raw"]
AConn = AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class VolumeRow:
    camera_id: str
    bucket: datetime
    line_id: str | None
    direction: str | None
    cls: str | None
    count: int
    quality: Quality
    coverage: float
    health: list[str]
    #: true for buckets of made-up demo history (``citywatch demo --history``), never mixed with live
    sample: bool = False


def _dims_sql(dims: Sequence[Dim]) -> tuple[sql.Composable, sql.Composable]:
    """Select list (NULL for collapsed dimensions) and GROUP BY list."""
    select = sql.SQL(", ").join(
        sql.Identifier(d) if d in dims else sql.SQL("NULL::text AS {}").format(sql.Identifier(d))
        for d in ALL_DIMS
    )
    group = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(d)) for d in ALL_DIMS if d in dims)
    return select, group


def _bucket_expr(g: Granularity) -> sql.Composable:
    # The same expressions the writer's rollups (and TimescaleDB's time_bucket) use.
    return sql.SQL(BUCKETS[g])


async def _volume_counts(
    conn: AConn, g: Granularity, source: Source, dims: Sequence[Dim], params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows (camera_id, bucket, line_id, direction, cls, count), ordered."""
    select, group = _dims_sql(dims)
    if source == "rollup" and set(dims) == set(ALL_DIMS):
        # The rollup is already one row per (camera, bucket, line, direction, class): no GROUP BY,
        # rows come in primary-key order.
        query = sql.SQL(
            "SELECT camera_id, bucket, line_id, direction, cls, count FROM {table} "
            "WHERE bucket >= %(start)s AND bucket < %(end)s AND camera_id = ANY(%(cams)s) "
            "ORDER BY camera_id, bucket, line_id, direction, cls"
        ).format(table=sql.Identifier(f"counts_{g}"))
    elif source == "rollup":
        query = sql.SQL(
            "SELECT camera_id, bucket, {select}, sum(count)::bigint AS count FROM {table} "
            "WHERE bucket >= %(start)s AND bucket < %(end)s AND camera_id = ANY(%(cams)s) "
            "GROUP BY camera_id, bucket{group} ORDER BY camera_id, bucket{group}"
        ).format(select=select, table=sql.Identifier(f"counts_{g}"), group=group)
    else:
        query = sql.SQL(
            "SELECT camera_id, {bucket} AS bucket, {select}, sum(count)::bigint AS count FROM counts "
            "WHERE bin_start >= %(start)s AND bin_start < %(end)s AND camera_id = ANY(%(cams)s) "
            "GROUP BY camera_id, 2{group} ORDER BY camera_id, 2{group}"
        ).format(select=select, bucket=_bucket_expr(g), group=group)
    # Binary results: parsing thousands of timestamps from text costs more than the query.
    async with conn.cursor(binary=True) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _volume_bins(
    conn: AConn, g: Granularity, source: Source, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows (camera_id, bucket, n_bins, covered_s, health_mask, total)."""
    if source == "rollup":
        query = sql.SQL(
            "SELECT camera_id, bucket, sum(n_bins)::bigint AS n_bins, sum(covered_s) AS covered_s, "
            "bit_or(health_mask) AS health_mask, sum(total)::bigint AS total FROM {table} "
            "WHERE bucket >= %(start)s AND bucket < %(end)s AND camera_id = ANY(%(cams)s) "
            "GROUP BY camera_id, bucket"
        ).format(table=sql.Identifier(f"count_bins_{g}"))
    else:
        query = sql.SQL(
            "SELECT camera_id, {bucket} AS bucket, count(*)::bigint AS n_bins, "
            "sum(extract(epoch FROM bin_end - bin_start))::float8 AS covered_s, "
            "bit_or(health_mask) AS health_mask, sum(total)::bigint AS total FROM count_bins "
            "WHERE bin_start >= %(start)s AND bin_start < %(end)s AND camera_id = ANY(%(cams)s) "
            "GROUP BY camera_id, 2"
        ).format(bucket=_bucket_expr(g))
    async with conn.cursor(binary=True) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def volume(
    conn: AConn,
    *,
    cameras: Sequence[str],
    start: datetime,
    end: datetime,
    g: Granularity,
    tz: ZoneInfo,
    dims: Sequence[Dim] = ALL_DIMS,
    source: Source = "rollup",
) -> list[VolumeRow]:
    """Counts per camera and bucket (and the chosen dimensions), every bucket with its quality.

    Buckets without any count bin are returned with ``count`` 0 and quality ``no_data``; buckets that
    were covered but saw no traffic have ``count`` 0 and their real quality.
    """
    buckets = bucket_range(start, end, g, tz)
    if not buckets or not cameras:
        return []
    params = {
        "start": buckets[0],
        "end": next_bucket(buckets[-1], g, tz),
        "cams": list(cameras),
        "tz": tz.key,
    }
    bins = await _volume_bins(conn, g, source, params)
    if source == "rollup" and not dims:
        # Camera totals: the bins rollup carries them (count_bins.total), no counts rows needed.
        counts: list[tuple[Any, ...]] = [(b[0], b[1], None, None, None, int(b[5])) for b in bins if b[5]]
    else:
        counts = await _volume_counts(conn, g, source, dims, params)
    timeline = await status_timeline(conn, params)
    spans = await sample_spans(conn, cameras)
    # Thousands of rows of Python: off the event loop.
    return await asyncio.to_thread(_assemble, cameras, buckets, g, tz, bins, counts, timeline, spans)


async def sample_spans(conn: AConn, cameras: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
    """Per camera, the [first, end) range of its sample (demo) history, where it has one."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT camera_id, first_bin, end_bin FROM sample_spans WHERE camera_id = ANY(%s)",
            (list(cameras),),
        )
        return {str(c): (f, e) for c, f, e in await cur.fetchall()}


def _assemble(
    cameras: Sequence[str],
    buckets: list[datetime],
    g: Granularity,
    tz: ZoneInfo,
    bins: list[tuple[Any, ...]],
    counts: list[tuple[Any, ...]],
    timeline: dict[str, list[tuple[datetime, str]]],
    spans: dict[str, tuple[datetime, datetime]],
) -> list[VolumeRow]:
    # Keys use epoch seconds: hashing datetimes with a ZoneInfo tz calls utcoffset() every time.
    info = {(b[0], int(b[1].timestamp())): b for b in bins}
    rows_by_key: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    last_key: tuple[str, datetime] | None = None
    group: list[tuple[Any, ...]] = []
    for r in counts:  # ordered by camera and bucket: group consecutive rows
        if last_key is None or r[0] != last_key[0] or r[1] != last_key[1]:
            last_key = (r[0], r[1])
            group = []
            rows_by_key[(r[0], int(r[1].timestamp()))] = group
        group.append(r)
    ends = [*buckets[1:], next_bucket(buckets[-1], g, tz)]
    bucket_spans = [
        (b, int(b.timestamp()), (e - b).total_seconds()) for b, e in zip(buckets, ends, strict=True)
    ]
    out: list[VolumeRow] = []
    append = out.append
    for cam in cameras:
        offline = offline_seconds(timeline.get(cam, []), buckets, ends)
        span = spans.get(cam)
        for k, (b, epoch, expected) in enumerate(bucket_spans):
            smp = span is not None and span[0] <= b < span[1]
            meta = info.get((cam, epoch))
            if meta is None:
                q, cov, flags = quality(0.0, expected, 0, 0, offline[k]), 0.0, []
            else:
                covered = float(meta[3])
                mask = int(meta[4] or 0)
                q = quality(covered, expected, mask, int(meta[2]), offline[k])
                cov = round(min(covered / expected, 1.0), 4)
                flags = health_flags(mask) if mask else []
            rows = rows_by_key.get((cam, epoch))
            if not rows:
                append(VolumeRow(cam, b, None, None, None, 0, q, cov, flags, smp))
                continue
            for r in rows:
                append(VolumeRow(cam, b, r[2], r[3], r[4], r[5], q, cov, flags, smp))
    return out


_STATUS: LiteralString = """
SELECT camera_id, ts, state FROM camera_status
WHERE camera_id = ANY(%(cams)s) AND ts >= %(start)s AND ts < %(end)s
UNION ALL
(SELECT DISTINCT ON (camera_id) camera_id, ts, state FROM camera_status
 WHERE camera_id = ANY(%(cams)s) AND ts < %(start)s ORDER BY camera_id, ts DESC)
"""


async def status_timeline(conn: AConn, params: dict[str, Any]) -> dict[str, list[tuple[datetime, str]]]:
    """Per camera, its status changes in the range plus the last one before it, in time order."""
    out: dict[str, list[tuple[datetime, str]]] = {}
    async with conn.cursor() as cur:
        await cur.execute(_STATUS, params)
        for cam, ts, state in await cur.fetchall():
            out.setdefault(cam, []).append((ts, state))
    for events in out.values():
        events.sort(key=lambda e: e[0])
    return out


_PEAK: LiteralString = """
SELECT bucket, sum(total)::bigint AS count FROM count_bins_1h
WHERE bucket >= %(start)s AND bucket < %(end)s AND camera_id = ANY(%(cams)s)
GROUP BY bucket
"""


async def hourly_totals(
    conn: AConn, cameras: Sequence[str], start: datetime, end: datetime
) -> dict[datetime, int]:
    """Total volume per hour bucket (UTC start) of the given cameras."""
    async with conn.cursor() as cur:
        await cur.execute(_PEAK, {"start": start, "end": end, "cams": list(cameras)})
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


_TOTALS: LiteralString = """
SELECT camera_id, cls, sum(count)::bigint FROM counts_1h
WHERE bucket >= %(start)s AND bucket < %(end)s AND camera_id = ANY(%(cams)s)
GROUP BY camera_id, cls
"""


async def totals(
    conn: AConn, cameras: Sequence[str], start: datetime, end: datetime
) -> dict[tuple[str, str], int]:
    """Volume per (camera, class) over a whole period (hour-aligned)."""
    async with conn.cursor() as cur:
        await cur.execute(_TOTALS, {"start": start, "end": end, "cams": list(cameras)})
        return {(r[0], r[1]): int(r[2]) for r in await cur.fetchall()}


_INCIDENTS: LiteralString = """
SELECT camera_id, type, severity, zone_id, line_id, count(*)::bigint AS count
FROM incidents
WHERE started_at >= %(start)s AND started_at < %(end)s AND camera_id = ANY(%(cams)s)
GROUP BY camera_id, type, severity, zone_id, line_id
ORDER BY camera_id, type, severity, zone_id NULLS FIRST, line_id NULLS FIRST
"""


async def incident_counts(
    conn: AConn, cameras: Sequence[str], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Incidents started in ``[start, end)`` by camera, type, severity and zone/line."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_INCIDENTS, {"start": start, "end": end, "cams": list(cameras)})
        return await cur.fetchall()


_MOVEMENTS: LiteralString = """
SELECT camera_id, junction_id, from_line, to_line, cls, sum(count)::bigint AS count
FROM movements
WHERE bin_start >= %(start)s AND bin_start < %(end)s AND camera_id = ANY(%(cams)s)
GROUP BY camera_id, junction_id, from_line, to_line, cls
ORDER BY camera_id, junction_id, from_line, to_line, cls
"""


async def movement_counts(
    conn: AConn, cameras: Sequence[str], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Turning movements of bins starting in ``[start, end)`` by camera, junction, entry, exit and class."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_MOVEMENTS, {"start": start, "end": end, "cams": list(cameras)})
        return await cur.fetchall()
