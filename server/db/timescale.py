"""TimescaleDB policies (compression, continuous-aggregate refresh, retention), from the settings, and
the refresh that makes late and re-sent bins visible in the continuous aggregates at once."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import LiteralString
from zoneinfo import ZoneInfo

import psycopg

from server.history.bins import Granularity, floor_bucket
from server.settings import Settings

log = logging.getLogger(__name__)

ROLLUPS: dict[str, tuple[str, str, str]] = {
    # view: (refresh start_offset, end_offset, schedule)
    "counts_15m": ("35 days", "15 minutes", "5 minutes"),
    "count_bins_15m": ("35 days", "15 minutes", "5 minutes"),
    "counts_1h": ("35 days", "1 hour", "15 minutes"),
    "count_bins_1h": ("35 days", "1 hour", "15 minutes"),
    "counts_1d": ("70 days", "1 day", "1 hour"),
    "count_bins_1d": ("70 days", "1 day", "1 hour"),
}
RAW_TABLES = (
    "counts",
    "count_bins",
    "zone_occupancy",
    "speeds",
    "movements",
    "heartbeats",
    "camera_status",
)
COMPRESSED = ("counts", "count_bins", "heartbeats")


def apply_policies(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> None:
    """(Re)apply every policy so that changed settings take effect; idempotent."""
    with conn.transaction():
        for view, (start, end, every) in ROLLUPS.items():
            conn.execute("SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", (view,))
            conn.execute(
                "SELECT add_continuous_aggregate_policy(%s, start_offset => %s::interval, "
                "end_offset => %s::interval, schedule_interval => %s::interval)",
                (view, start, end, every),
            )
        for table in COMPRESSED:
            conn.execute("SELECT remove_compression_policy(%s, if_exists => true)", (table,))
            conn.execute(
                "SELECT add_compression_policy(%s, %s::interval)", (table, settings.ts_compress_after)
            )
        for table in RAW_TABLES:
            conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
            if settings.ts_raw_retention:
                conn.execute(
                    "SELECT add_retention_policy(%s, %s::interval)", (table, settings.ts_raw_retention)
                )
        for view in ROLLUPS:
            conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (view,))
            if settings.ts_rollup_retention:
                conn.execute(
                    "SELECT add_retention_policy(%s, %s::interval)", (view, settings.ts_rollup_retention)
                )
    log.info(
        "timescale policies: compress after %s, raw retention %s, rollup retention %s",
        settings.ts_compress_after,
        settings.ts_raw_retention or "none",
        settings.ts_rollup_retention or "none",
    )


def refresh(
    conn: psycopg.Connection[tuple[object, ...]],
    view: str,
    start: datetime | None = None,
    end: datetime | None = None,
    attempts: int = 20,
) -> None:
    """``refresh_continuous_aggregate`` on an autocommit connection, waiting out a concurrent refresh
    (a policy job running meanwhile makes TimescaleDB refuse with LockNotAvailable)."""
    for attempt in range(attempts):
        try:
            conn.execute(
                "CALL refresh_continuous_aggregate(%s, %s::timestamptz, %s::timestamptz)", (view, start, end)
            )
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


#: Bucket width of each continuous aggregate (hours and days are the site's local ones).
GRANULARITY: dict[str, Granularity] = {view: view.rsplit("_", 1)[1] for view in ROLLUPS}  # type: ignore[misc]

_BELOW_WATERMARK: LiteralString = """
SELECT user_view_name,
       _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id))
FROM _timescaledb_catalog.continuous_agg
WHERE user_view_name = ANY(%s)
  AND _timescaledb_functions.cagg_watermark(mat_hypertable_id)
      > (extract(epoch FROM %s::timestamptz) * 1e6)::bigint
"""


def refresh_late(conn: psycopg.Connection[tuple[object, ...]], earliest: datetime, tz: ZoneInfo) -> int:
    """Make bins that start at ``earliest`` or later visible in every continuous aggregate at once.

    Real-time aggregation answers above each aggregate's watermark from the raw rows, but below it from
    the materialization, which a late or re-sent bin only invalidates: until a refresh it would be
    missing from the answers. This refreshes each aggregate whose watermark lies above ``earliest``,
    from that bin's bucket to the watermark (only invalidated buckets are recomputed, so the wide window
    costs little). Call it after the bins' transaction committed, on an autocommit connection.
    Returns the number of aggregates refreshed."""
    done = 0
    for view, mark in conn.execute(_BELOW_WATERMARK, (list(ROLLUPS), earliest)).fetchall():
        start = floor_bucket(earliest, GRANULARITY[str(view)], tz)
        if isinstance(mark, datetime) and start < mark:
            refresh(conn, str(view), start, mark)
            done += 1
    return done
