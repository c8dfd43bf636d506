"""Migrations: applied once under a lock, recorded with checksums, refused when a file changed; the
backend choice when TimescaleDB is installed but not preloaded (fall back with one warning, or refuse)."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from server.db.migrate import load_migrations, migrate, pin_backend, storage_backend
from server.errors import MigrationError
from tests.conftest import ROOT
from tests.server.helpers import write_site

pytestmark = pytest.mark.integration


def test_migrate_applies_once_and_records_checksums(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        first = migrate(conn, "Asia/Ho_Chi_Minh", "auto")
        assert first.backend == "plain"  # fresh_db pins this tier to plain PostgreSQL
        assert "0001_core" in first.applied and "0002_rollup_tables" in first.applied
        assert first.skipped == [
            "0003_timescale",
            "0006_bin_totals_timescale",
            "0008_movements_timescale",
            "0012_chunk_intervals",
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
            pin_backend(conn, "plain")  # whatever the default cluster preloads
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


def test_installed_but_not_preloaded_falls_back_with_one_warning(
    fresh_nopreload_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator mistake: CREATE EXTENSION would fail (FATAL); auto mode uses plain PostgreSQL."""
    with psycopg.connect(fresh_nopreload_db, autocommit=True) as conn, caplog.at_level(logging.WARNING):
        assert migrate(conn, "Asia/Ho_Chi_Minh", "auto").backend == "plain"
        assert migrate(conn, "Asia/Ho_Chi_Minh", "auto").backend == "plain"  # recorded: no new warning
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (
            0,
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "shared_preload_libraries = 'timescaledb'" in warnings[0]


def _server_run(url: str, tmp_path: Path, timescale: str) -> subprocess.CompletedProcess[str]:
    site = write_site(tmp_path, "mig", "cwmig", ["cam-m"])
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "CITYWATCH_SITE": str(site),
        "CITYWATCH_TIMESCALE": timescale,
        "CITYWATCH_DB_WAIT_S": "5",
        "CITYWATCH_HTTP_PORT": "1",  # never reached: start-up stops before serving
    }
    exe = Path(sys.executable).with_name("citywatch")
    return subprocess.run(
        [str(exe), "server", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_server_run_refuses_when_timescale_required_but_not_preloaded(
    tmp_path: Path, fresh_nopreload_db: str
) -> None:
    """CITYWATCH_TIMESCALE=on: `citywatch server run` exits 1 with the fix in the log (no psycopg FATAL)."""
    done = _server_run(fresh_nopreload_db, tmp_path, "on")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert "not preloaded" in out and "shared_preload_libraries = 'timescaledb'" in out, out[-3000:]
    assert "FATAL" not in out and "Traceback" not in out, out[-3000:]
