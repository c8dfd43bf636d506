"""TimescaleDB policies (compression, continuous-aggregate refresh, retention), from the settings."""

from __future__ import annotations

import logging

import psycopg

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
