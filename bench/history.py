"""History query benchmark: the API's volume query (server.history.queries.volume, quality flags
included) over the rollups and over the raw rows, side by side, on generated 5-minute count bins.

    python bench/history.py --json                 # a year: 20 cameras x 2 lines x 2 directions x 4 classes
    python bench/history.py --days 30 --json       # smaller, faster
    python bench/history.py --backend timescale --json   # the same data on TimescaleDB (127.0.0.1:5433)
    python bench/history.py --cameras 100 --json   # the 100-camera option

``--backend timescale`` stores the same generated rows in the hypertables, materializes the continuous
aggregates (timed as the rollups), compresses the raw chunks (timed; sizes before and after), and times
the planner's queries as the API runs them: one camera hourly for 30 days, all cameras daily for the
range, peak hours (hourly totals of all cameras) and a two-period compare (totals per camera and class).

The data go into a database named by --db-name (kept, so later runs with --reuse skip generation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

import psycopg
from _common import CELLS, DEFAULT_DATABASE_URL, create_database, percentiles
from psycopg import sql

from server.db.migrate import migrate
from server.db.timescale import ROLLUPS, refresh
from server.history import queries
from server.ingest.statements import BUCKETS

TZ = "Asia/Ho_Chi_Minh"
TIMESCALE_URL = "postgresql://postgres@127.0.0.1:5433/postgres"

_BINS: LiteralString = """
INSERT INTO count_bins (camera_id, bin_start, bin_end, msg_id, seq, frames, fps, health_mask)
SELECT 'cam-' || lpad(c::text, 3, '0'), t, t + %(step)s::interval, gen_random_uuid(), 0, 600, 10.0, 0
FROM generate_series(0, %(cams)s - 1) AS c,
     generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - %(step)s::interval, %(step)s::interval) AS t
"""
_COUNTS: LiteralString = """
INSERT INTO counts (camera_id, bin_start, line_id, direction, cls, count)
SELECT b.camera_id, b.bin_start, cell.line_id, cell.direction, cell.cls, 1 + (random() * 20)::int
FROM count_bins b
CROSS JOIN unnest(%(lines)s::text[], %(dirs)s::text[], %(classes)s::text[]) AS cell(line_id, direction, cls)
WHERE b.bin_start >= %(lo)s AND b.bin_start < %(hi)s
"""
_TOTALS: LiteralString = """
UPDATE count_bins b SET total = s.t
FROM (SELECT camera_id, bin_start, sum(count) AS t FROM counts
      WHERE bin_start >= %(lo)s AND bin_start < %(hi)s GROUP BY 1, 2) AS s
WHERE b.camera_id = s.camera_id AND b.bin_start = s.bin_start
"""
_ROLLUP_COUNTS: LiteralString = """
INSERT INTO counts_{g} (camera_id, bucket, line_id, direction, cls, count)
SELECT camera_id, {bucket}, line_id, direction, cls, sum(count) FROM counts GROUP BY 1, 2, 3, 4, 5
"""
_ROLLUP_BINS: LiteralString = """
INSERT INTO count_bins_{g} (camera_id, bucket, n_bins, covered_s, frames, min_fps, health_mask, total)
SELECT camera_id, {bucket}, count(*), sum(extract(epoch FROM bin_end - bin_start)), sum(frames), min(fps),
       bit_or(health_mask), sum(total)
FROM count_bins GROUP BY 1, 2
"""


def generate(
    url: str, cameras: int, days: int, bin_minutes: int, end: datetime, backend: str = "plain"
) -> dict[str, Any]:
    start = end - timedelta(days=days)
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, TZ, "on" if backend == "timescale" else "off")
        conn.execute("SET synchronous_commit = off")
        step = f"{bin_minutes} minutes"
        lines, dirs, classes = (list(col) for col in zip(*CELLS, strict=True))
        chunk = timedelta(days=15)
        lo = start
        while lo < end:
            hi = min(lo + chunk, end)
            params = {"lo": lo, "hi": hi, "step": step, "cams": cameras}
            conn.execute(_BINS, params)
            conn.execute(_COUNTS, {**params, "lines": lines, "dirs": dirs, "classes": classes})
            conn.execute(_TOTALS, params)
            lo = hi
            print(f"generated up to {hi:%Y-%m-%d}", file=sys.stderr)
        t_raw = time.perf_counter()
        if backend == "timescale":
            for view in ROLLUPS:
                refresh(conn, view)
        else:
            for g, bucket in BUCKETS.items():
                conn.execute(_ROLLUP_COUNTS.replace("{g}", g).replace("{bucket}", bucket), {"tz": TZ})
                conn.execute(_ROLLUP_BINS.replace("{g}", g).replace("{bucket}", bucket), {"tz": TZ})
        t_rollups = time.perf_counter()
        out: dict[str, Any] = {"raw_s": round(t_raw - t0, 1), "rollups_s": round(t_rollups - t_raw, 1)}
        if backend == "timescale":
            out["uncompressed_bytes"] = _ts_size(conn)
            for table in ("counts", "count_bins"):
                conn.execute(
                    sql.SQL("SELECT count(compress_chunk(c, true)) FROM show_chunks({}) AS c").format(
                        sql.Literal(table)
                    )
                )
            out["compress_s"] = round(time.perf_counter() - t_rollups, 1)
        conn.execute("VACUUM ANALYZE")
        out["total_s"] = round(time.perf_counter() - t0, 1)
    return out


def _ts_size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT hypertable_size('counts') + hypertable_size('count_bins')").fetchone()
    return int(row[0]) if row and row[0] else 0


def sizes(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:

        def size(*tables: str) -> int:
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(%s::text[]) AS t",
                (list(tables),),
            ).fetchone()
            return int(row[0]) if row and row[0] else 0

        rows = conn.execute("SELECT count(*) FROM counts").fetchone()
        rollups = [f"{k}_{g}" for k in ("counts", "count_bins") for g in ("15m", "1h", "1d")]
        ts = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        if ts and ts[0]:
            # Hypertables and continuous aggregates: their chunks are other tables.
            raw = _ts_size(conn)
            stats = conn.execute(
                "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes) "
                "FROM (SELECT * FROM hypertable_compression_stats('counts') "
                "UNION ALL SELECT * FROM hypertable_compression_stats('count_bins')) s"
            ).fetchone()
            roll = conn.execute(
                "SELECT sum(hypertable_size(format('%I.%I', materialization_hypertable_schema, "
                "materialization_hypertable_name)::regclass)) "
                "FROM timescaledb_information.continuous_aggregates"
            ).fetchone()
            extra = {
                "compressed_chunks_before_bytes": int(stats[0]) if stats and stats[0] else 0,
                "compressed_chunks_after_bytes": int(stats[1]) if stats and stats[1] else 0,
            }
            rollup_bytes = int(roll[0]) if roll and roll[0] else 0
        else:
            raw, rollup_bytes, extra = size("counts", "count_bins"), size(*rollups), {}
        return {
            "raw_rows": int(rows[0]) if rows else 0,
            "raw_bytes": raw,
            "rollup_bytes": rollup_bytes,
            **extra,
            "rollup_rows": {
                g: int(
                    (
                        conn.execute(
                            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(f"counts_{g}"))
                        ).fetchone()
                        or [0]
                    )[0]
                )
                for g in ("15m", "1h", "1d")
            },
        }


async def timed(url: str, repeat: int, query: str = "volume", **kw: Any) -> dict[str, float]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:

        async def once() -> int:
            if query == "peak_hours":
                return len(await queries.hourly_totals(conn, kw["cameras"], kw["start"], kw["end"]))
            if query == "compare":
                mid = kw["start"] + (kw["end"] - kw["start"]) / 2
                a = await queries.totals(conn, kw["cameras"], kw["start"], mid)
                b = await queries.totals(conn, kw["cameras"], mid, kw["end"])
                return len(a) + len(b)
            return len(await queries.volume(conn, **kw))

        times = []
        if repeat > 1:
            await once()  # warm-up
        for _ in range(repeat):
            t = time.perf_counter()
            rows = await once()
            times.append((time.perf_counter() - t) * 1000)
    out: dict[str, float] = {k: v for k, v in percentiles(times).items() if k in ("p50_ms", "p95_ms")}
    out["rows"] = rows
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("plain", "timescale"), default="plain")
    parser.add_argument(
        "--database-url",
        help=f"admin DSN (default: {DEFAULT_DATABASE_URL}, or {TIMESCALE_URL} for timescale)",
    )
    parser.add_argument("--db-name", default="cw_bench_history", help="database for the generated data")
    parser.add_argument("--reuse", action="store_true", help="keep existing data in --db-name")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--bin-minutes", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per rollup query")
    parser.add_argument(
        "--raw-repeat", type=int, default=3, help="timed runs per raw query (slow at full size)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    admin = args.database_url or (TIMESCALE_URL if args.backend == "timescale" else DEFAULT_DATABASE_URL)
    url, existed = create_database(admin, args.db_name, reuse=args.reuse)
    end = datetime(2026, 11, 1, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    load_before = os.getloadavg()[0]
    gen = (
        {"skipped": True}
        if existed
        else generate(url, args.cameras, args.days, args.bin_minutes, end, args.backend)
    )
    size = sizes(url)
    tz = ZoneInfo(TZ)
    cams = [f"cam-{i:03d}" for i in range(args.cameras)]
    cases: dict[str, dict[str, Any]] = {
        "hourly_one_camera_30d": {"cameras": cams[:1], "start": end - timedelta(days=min(30, args.days)),
                                  "end": end, "g": "1h", "tz": tz},
        "daily_all_cameras_range": {"cameras": cams, "start": end - timedelta(days=args.days), "end": end,
                                    "g": "1d", "tz": tz, "dims": ()},
    }  # fmt: skip
    results: dict[str, Any] = {}
    for name, kw in cases.items():
        for source in ("rollup", "raw"):
            repeat = args.repeat if source == "rollup" else args.raw_repeat
            results[f"{name}_{source}"] = asyncio.run(timed(url, repeat, source=source, **kw))
    span: dict[str, Any] = {"cameras": cams, "start": end - timedelta(days=args.days), "end": end}
    results["peak_hours_all_cameras_range"] = asyncio.run(timed(url, args.repeat, "peak_hours", **span))
    results["compare_two_halves_all_cameras"] = asyncio.run(timed(url, args.repeat, "compare", **span))
    # Linear projection to 100 cameras and 1-minute bins (raw x25 rows, rollups x5: bins do not matter).
    scale_raw = (100 / args.cameras) * (args.bin_minutes / 1)
    scale_cam = 100 / args.cameras
    projection = {
        "raw_rows": int(size["raw_rows"] * scale_raw * 365 / args.days),
        "raw_gib": round(size["raw_bytes"] * scale_raw * 365 / args.days / 2**30, 1),
        "rollup_gib": round(size["rollup_bytes"] * scale_cam * 365 / args.days / 2**30, 2),
        "hourly_one_camera_30d_rollup_ms_est": results["hourly_one_camera_30d_rollup"]["p50_ms"],
        "daily_all_cameras_year_rollup_ms_est": round(
            results["daily_all_cameras_range_rollup"]["p50_ms"] * scale_cam * 365 / args.days, 1
        ),
    }
    out = {
        "backend": args.backend,
        "load_average_1m": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "config": {"days": args.days, "cameras": args.cameras, "bin_minutes": args.bin_minutes,
                   "cells_per_bin": len(CELLS), "repeat": args.repeat, "raw_repeat": args.raw_repeat},
        "generation": gen,
        "size": size,
        "queries": results,
        "projection_100_cameras_1min_year": projection,
    }  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
