"""Migrations: applied once under a lock, recorded with checksums, refused when a file changed."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest

from server.db.migrate import load_migrations, migrate, storage_backend
from server.errors import MigrationError

pytestmark = pytest.mark.integration


def test_migrate_applies_once_and_records_checksums(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        first = migrate(conn, "Asia/Ho_Chi_Minh", "auto")
        assert first.backend == "plain"  # the local PostgreSQL has no timescaledb
        assert "0001_core" in first.applied and "0002_rollup_tables" in first.applied
        assert first.skipped == ["0003_timescale"]
        again = migrate(conn, "Asia/Ho_Chi_Minh", "auto")
        assert again.applied == [] and again.skipped == []
        rows = conn.execute(
            "SELECT version, checksum, skipped FROM schema_migrations ORDER BY version"
        ).fetchall()
        files = load_migrations()
        assert [(r[0], r[1]) for r in rows] == [(m.version, m.checksum) for m in files]
        assert storage_backend(conn) == "plain"
        for table in ("counts", "count_bins", "counts_1h", "count_bins_1d", "dead_letters", "seq_gaps"):
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
