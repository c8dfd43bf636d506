"""`citywatch server migrate|run` from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT
from tests.server.helpers import write_site

EXE = str(Path(sys.executable).with_name("citywatch"))


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], check=False, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_actions() -> None:
    out = run(["server", "--help"], {})
    assert out.returncode == 0
    assert "run" in out.stdout and "migrate" in out.stdout


@pytest.mark.integration
def test_migrate_command_applies_and_is_idempotent(fresh_db: str, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": fresh_db,
        "CITYWATCH_SITE": str(write_site(tmp_path, "cli", "citywatch", ["cam-1"])),
    }
    first = run(["server", "migrate"], env)
    assert first.returncode == 0, first.stderr
    assert "0001_core applied" in first.stderr
    second = run(["server", "migrate"], env)
    assert second.returncode == 0 and "applied" not in second.stderr.replace("0 migration(s) applied", "")
    with psycopg.connect(fresh_db) as conn:
        # Every migration file is recorded (those for TimescaleDB only as skipped on plain PostgreSQL).
        files = len(list((ROOT / "server" / "migrations").glob("*.sql")))
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (files,)


def test_bad_settings_fail_cleanly_without_secrets(tmp_path: Path) -> None:
    out = run(
        ["server", "migrate"],
        {"CITYWATCH_BATCH_SIZE": "lots", "DATABASE_URL": "postgresql://u:s3cret@127.0.0.1:1/x"},
    )
    assert out.returncode == 1
    assert "CITYWATCH_BATCH_SIZE" in out.stderr
    assert "s3cret" not in out.stderr


@pytest.mark.integration
def test_user_add_list_disable(fresh_db: str, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": fresh_db,
        "CITYWATCH_SITE": str(write_site(tmp_path, "cli", "citywatch", ["cam-1"])),
    }

    def user(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "server", "user", *args], check=False, env={**os.environ, **env},
            capture_output=True, text=True, timeout=120, input=stdin,
        )  # fmt: skip

    add = user("add", "le.van.an", "--role", "police", "--groups", "centre,bridges", "--password-stdin",
               stdin="s3cret-passw0rd\n")  # fmt: skip
    assert add.returncode == 0, add.stderr
    assert (
        user("add", "le.van.an", "--role", "planner", "--password-stdin", stdin="another-pass\n").returncode
        == 1
    )
    short = user("add", "x", "--role", "planner", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    listed = user("list")
    assert listed.returncode == 0
    assert (
        "le.van.an" in listed.stdout
        and "police" in listed.stdout
        and "groups=centre,bridges" in listed.stdout
    )
    assert "active" in listed.stdout
    assert user("disable", "le.van.an").returncode == 0
    assert "disabled" in user("list").stdout
    assert user("disable", "nobody").returncode == 1
    for out in (add, listed):
        assert "s3cret-passw0rd" not in out.stdout + out.stderr
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = 'le.van.an'").fetchone()
    assert row is not None and row[0].startswith("$argon2id$")
    key = run(["server", "apikey", "prometheus", "--role", "operator"], env)
    assert key.returncode == 0 and key.stdout.startswith("cwk_")
