"""Forward-only numbered SQL migrations, applied under an advisory lock and recorded with checksums.

Files are ``server/migrations/NNNN_name.sql``. A first line ``-- citywatch: backend=plain`` or
``-- citywatch: backend=timescale`` limits a file to one storage backend; on the other it is recorded
as skipped (its checksum is still kept, so an edited file is noticed either way). The backend is chosen
on the first run (TimescaleDB when the extension is available, unless ``CITYWATCH_TIMESCALE=off``) and
recorded; later runs keep it. Installed but not preloaded (``shared_preload_libraries``) counts as
unavailable in ``auto`` mode, with one warning saying how to enable it; ``on`` then refuses to start.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

from server.errors import DatabaseUnavailableError, MigrationError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: pg_advisory_lock key: any constant shared by every server instance ("citywat" in ASCII).
LOCK_KEY = 0x63697479776174
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_BACKEND_RE = re.compile(r"^--\s*citywatch:\s*backend=(plain|timescale)\s*$")
TIMEZONE_PLACEHOLDER = "{{site_timezone}}"

Backend = Literal["plain", "timescale"]

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    skipped    boolean NOT NULL DEFAULT false,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS citywatch_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str
    backend: Backend | None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrateResult:
    backend: Backend
    applied: list[str]
    skipped: list[str]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read and order the migration files; a malformed name or duplicate number is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: migration number {version} is used twice")
        text = path.read_text(encoding="utf-8")
        first = text.split("\n", 1)[0]
        backend_match = _BACKEND_RE.match(first)
        backend: Backend | None = None
        if backend_match is not None:
            backend = "plain" if backend_match.group(1) == "plain" else "timescale"
        found[version] = Migration(version, match.group(2), text, backend)
    return [found[v] for v in sorted(found)]


#: What an operator must do when the extension is installed but not loaded at server start.
PRELOAD_HINT = (
    "TimescaleDB is installed in this PostgreSQL but not preloaded: add "
    "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart PostgreSQL to use it "
    "(or set CITYWATCH_TIMESCALE=off to use plain PostgreSQL without this warning)"
)


@dataclass(frozen=True, slots=True)
class TimescaleState:
    """What the server can tell about TimescaleDB on a connection."""

    available: bool  # the extension's files are installed (pg_available_extensions)
    preloaded: bool  # its library is in shared_preload_libraries (needed to create or use it)
    created: bool  # CREATE EXTENSION was run in this database


def timescale_state(conn: psycopg.Connection[tuple[object, ...]]) -> TimescaleState:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), "
        "'timescaledb' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), "
        "' ', ''), ',')), "
        "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    ).fetchone()
    assert row is not None
    return TimescaleState(bool(row[0]), bool(row[1]), bool(row[2]))


def _choose_backend(conn: psycopg.Connection[tuple[object, ...]], mode: str) -> Backend:
    state = timescale_state(conn)
    row = conn.execute("SELECT value FROM citywatch_meta WHERE key = 'backend'").fetchone()
    if row is not None:
        recorded = str(row[0])
        if mode == "on" and recorded != "timescale":
            raise MigrationError("CITYWATCH_TIMESCALE=on but this database was set up without TimescaleDB")
        if recorded == "timescale" and not state.preloaded:
            raise MigrationError(
                "this database was set up with TimescaleDB, which is not preloaded now: add "
                "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart PostgreSQL"
            )
        return "timescale" if recorded == "timescale" else "plain"
    if mode == "on" and not state.available:
        raise MigrationError("CITYWATCH_TIMESCALE=on but the timescaledb extension is not available")
    if mode == "on" and not state.preloaded:
        raise MigrationError(f"CITYWATCH_TIMESCALE=on but {PRELOAD_HINT}")
    backend: Backend = "timescale" if state.available and state.preloaded and mode != "off" else "plain"
    if state.available and not state.preloaded and mode == "auto":
        # The common operator mistake: CREATE EXTENSION would fail with a FATAL. Fall back, loudly once.
        log.warning("using plain PostgreSQL: %s", PRELOAD_HINT)
    if backend == "timescale":
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    conn.execute("INSERT INTO citywatch_meta (key, value) VALUES ('backend', %s)", (backend,))
    return backend


def pin_backend(conn: psycopg.Connection[tuple[object, ...]], backend: Backend) -> None:
    """Record the backend before the first :func:`migrate` (tests pin each tier's backend with it)."""
    with conn.transaction():
        conn.execute(_BOOTSTRAP.encode())
        if backend == "timescale":
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute(
            "INSERT INTO citywatch_meta (key, value) VALUES ('backend', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (backend,),
        )


def _render(migration: Migration, conn: psycopg.Connection[tuple[object, ...]], timezone: str) -> bytes:
    literal = sql.Literal(timezone).as_string(conn)
    return migration.text.replace(TIMEZONE_PLACEHOLDER, literal).encode()


def migrate(
    conn: psycopg.Connection[tuple[object, ...]],
    timezone: str,
    mode: str = "auto",
    migrations: list[Migration] | None = None,
) -> MigrateResult:
    """Apply pending migrations on an autocommit connection; raise if an applied one has changed."""
    todo = load_migrations() if migrations is None else migrations
    if not conn.autocommit:
        raise MigrationError("migrate() needs an autocommit connection")
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        with conn.transaction():
            conn.execute(_BOOTSTRAP.encode())
            backend = _choose_backend(conn, mode)
            conn.execute(
                "INSERT INTO citywatch_meta (key, value) VALUES ('timezone', %s) ON CONFLICT DO NOTHING",
                (timezone,),
            )
        tz_row = conn.execute("SELECT value FROM citywatch_meta WHERE key = 'timezone'").fetchone()
        if tz_row is not None and tz_row[0] != timezone:
            log.warning(
                "site time zone %s differs from %s used for the stored hour/day rollups", timezone, tz_row[0]
            )
        applied = {
            int(str(r[0])): str(r[1]) for r in conn.execute("SELECT version, checksum FROM schema_migrations")
        }
        by_version = {m.version: m for m in todo}
        for version, checksum in sorted(applied.items()):
            known = by_version.get(version)
            if known is None:
                raise MigrationError(f"migration {version:04d} is applied but its file is missing")
            if known.checksum != checksum:
                raise MigrationError(
                    f"migration {version:04d}_{known.name} has changed since it was applied "
                    "(migrations are forward-only: add a new file instead)"
                )
        done: list[str] = []
        skipped: list[str] = []
        for m in todo:
            if m.version in applied:
                continue
            label = f"{m.version:04d}_{m.name}"
            skip = m.backend is not None and m.backend != backend
            with conn.transaction():
                if not skip:
                    try:
                        conn.execute(_render(m, conn, timezone))
                    except psycopg.Error as exc:
                        raise MigrationError(f"{label}: {exc}") from exc
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, skipped) "
                    "VALUES (%s, %s, %s, %s)",
                    (m.version, m.name, m.checksum, skip),
                )
            (skipped if skip else done).append(label)
            log.info("migration %s %s", label, "skipped (other backend)" if skip else "applied")
        return MigrateResult(backend, done, skipped)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def pending(
    conn: psycopg.Connection[tuple[object, ...]], migrations: list[Migration] | None = None
) -> list[str]:
    """Read-only: the migrations not yet applied (raise if an applied one has changed). For a server
    whose role may not migrate: it starts only on an up-to-date schema."""
    todo = load_migrations() if migrations is None else migrations
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return [f"{m.version:04d}_{m.name}" for m in todo]
    applied = {
        int(str(r[0])): str(r[1]) for r in conn.execute("SELECT version, checksum FROM schema_migrations")
    }
    for m in todo:
        if m.version in applied and applied[m.version] != m.checksum:
            raise MigrationError(f"migration {m.version:04d}_{m.name} has changed since it was applied")
    return [f"{m.version:04d}_{m.name}" for m in todo if m.version not in applied]


def may_migrate(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether the connected role can create tables in ``public`` (a restricted app role cannot)."""
    row = conn.execute("SELECT has_schema_privilege(current_user, 'public', 'CREATE')").fetchone()
    return bool(row and row[0])


def storage_backend(conn: psycopg.Connection[tuple[object, ...]]) -> Backend:
    """The backend recorded by :func:`migrate`."""
    row = conn.execute("SELECT value FROM citywatch_meta WHERE key = 'backend'").fetchone()
    if row is None:
        raise MigrationError("the database is not migrated (run `citywatch server migrate`)")
    return "timescale" if row[0] == "timescale" else "plain"


def wait_for_database(dsn: str, timeout_s: float) -> None:
    """Poll until the database accepts a connection, or raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnavailableError(f"database not reachable after {timeout_s:.0f} s") from exc
            log.info("waiting for the database (%s)", type(exc).__name__)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
