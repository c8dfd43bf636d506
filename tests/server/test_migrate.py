"""Migrations: applied once under a lock, recorded with checksums, refused when a file changed."""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
import pytest
from psycopg import sql

from server.db.migrate import load_migrations, migrate, storage_backend
from server.errors import MigrationError

pytestmark = pytest.mark.integration


def test_migrate_applies_once_and_records_checksums(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        first = migrate(conn, "Asia/Ho_Chi_Minh", "auto")
        assert first.backend == "plain"  # the local PostgreSQL has no timescaledb
        assert "0001_core" in first.applied and "0002_rollup_tables" in first.applied
        assert first.skipped == [
            "0003_timescale",
            "0006_bin_totals_timescale",
            "0008_movements_timescale",
        ]
        again = migrate(conn, "Asia/Ho_Chi_Minh", "auto")
        assert again.applied == [] and again.skipped == []
        rows = conn.execute(
            "SELECT version, checksum, skipped FROM schema_migrations ORDER BY version"
        ).fetchall()
        files = load_migrations()
        assert [(r[0], r[1]) for r in rows] == [(m.version, m.checksum) for m in files]
        assert storage_backend(conn) == "plain"
        for table in (
            "counts",
            "count_bins",
            "counts_1h",
            "count_bins_1d",
            "movements",
            "dead_letters",
            "seq_gaps",
        ):
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (table,)


def test_changed_migration_is_refused(fresh_db: str) -> None:
    files = load_migrations()
    files[0] = replace(files[0], text=files[0].text + "\n-- edited\n")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, "Asia/Ho_Chi_Minh", "auto")
        with pytest.raises(MigrationError, match="0001_core has changed"):
            migrate(conn, "Asia/Ho_Chi_Minh", "auto", files)


def test_timescale_on_without_extension_is_refused(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, "Asia/Ho_Chi_Minh", "auto")
        with pytest.raises(MigrationError, match="without TimescaleDB"):
            migrate(conn, "Asia/Ho_Chi_Minh", "on")


def test_upgrade_backfills_bin_totals(database_url: str) -> None:
    """A database migrated before 0004 keeps its data, and the new totals (raw and rollup) are filled."""
    name = f"cw_test_up_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, "Asia/Ho_Chi_Minh", "auto", load_migrations()[:3])
            conn.execute(
                "INSERT INTO count_bins (camera_id, bin_start, bin_end, msg_id, seq, frames, fps) "
                "VALUES ('c', '2026-01-01T10:00Z', '2026-01-01T10:01Z', gen_random_uuid(), 1, 1, 1)"
            )
            conn.execute(
                "INSERT INTO counts VALUES ('c', '2026-01-01T10:00Z', 'L1', 'n', 'car', 4), "
                "('c', '2026-01-01T10:00Z', 'L1', 'n', 'bus', 3)"
            )
            conn.execute(
                "INSERT INTO count_bins_1d (camera_id, bucket, n_bins, covered_s, frames, min_fps, "
                "health_mask) VALUES ('c', '2025-12-31T17:00Z', 1, 60, 1, 1, 0)"
            )
            result = migrate(conn, "Asia/Ho_Chi_Minh", "auto")
            # Later migrations follow; the TimescaleDB-only ones (0006, 0008) are skipped on plain PostgreSQL.
            assert result.applied[:3] == ["0004_bin_totals", "0005_bin_totals_rollups", "0007_movements"]
            assert "0006_bin_totals_timescale" not in result.applied
            assert conn.execute("SELECT total FROM count_bins").fetchone() == (7,)
            assert conn.execute("SELECT total FROM count_bins_1d").fetchone() == (7,)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
