"""Server test fixtures: a fresh database per test module (dropped afterwards), each tier on its backend.

Every tier pins its storage backend, so the suite passes whether the machine's default cluster is plain
PostgreSQL or has TimescaleDB preloaded:

- ``fresh_db``: a database on ``CITYWATCH_TEST_DATABASE_URL`` (default 127.0.0.1:5432) pinned to plain
  PostgreSQL (``migrate`` in any mode then keeps plain, and the tests' plain writers fit).
- ``fresh_ts_db``: a database on ``CITYWATCH_TEST_TIMESCALE_URL`` (default 127.0.0.1:5433, the cluster
  ``scripts/timescaledb.sh`` creates) pinned to TimescaleDB. Skipped (failed in CI) when that cluster is
  absent or does not preload TimescaleDB.
- ``fresh_nopreload_db``: an unpinned database on ``CITYWATCH_TEST_NOPRELOAD_URL`` (default
  127.0.0.1:5434, also from ``scripts/timescaledb.sh``), where TimescaleDB is installed but not
  preloaded: the operator mistake the backend choice must survive.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from server.db.migrate import Backend, pin_backend, timescale_state
from tests.conftest import in_ci

DEFAULT_TIMESCALE_URL = "postgresql://postgres@127.0.0.1:5433/postgres"
DEFAULT_NOPRELOAD_URL = "postgresql://postgres@127.0.0.1:5434/postgres"


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def _fresh(admin_url: str, pin: Backend | None) -> Iterator[str]:
    name = f"cw_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if pin != "plain":
            _unavailable(f"the TimescaleDB test cluster is not reachable at {admin_url} "
                         f"(run scripts/timescaledb.sh): {exc}")  # fmt: skip
        pytest.skip(f"PostgreSQL not reachable at {admin_url}: {exc}")
    with admin:
        state = timescale_state(admin)
        if pin == "timescale" and not state.preloaded:
            _unavailable(f"{admin_url} does not preload TimescaleDB (run scripts/timescaledb.sh)")
        if pin is None and (not state.available or state.preloaded):
            _unavailable(f"{admin_url} should have TimescaleDB installed but not preloaded "
                         "(run scripts/timescaledb.sh)")  # fmt: skip
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_db(admin_url, name)
    try:
        if pin is not None:
            with psycopg.connect(url, autocommit=True) as conn:
                pin_backend(conn, pin)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def timescale_url() -> str:
    return os.environ.get("CITYWATCH_TEST_TIMESCALE_URL", DEFAULT_TIMESCALE_URL)


@pytest.fixture(scope="module")
def fresh_db(database_url: str) -> Iterator[str]:
    """The URL of a new, empty database pinned to plain PostgreSQL, dropped after the module's tests."""
    yield from _fresh(database_url, "plain")


@pytest.fixture(scope="session")
def nopreload_url() -> str:
    return os.environ.get("CITYWATCH_TEST_NOPRELOAD_URL", DEFAULT_NOPRELOAD_URL)


@pytest.fixture
def fresh_nopreload_db(nopreload_url: str) -> Iterator[str]:
    """A new, empty, unpinned database where TimescaleDB is installed but not preloaded."""
    yield from _fresh(nopreload_url, None)


@pytest.fixture(scope="module")
def fresh_ts_db(timescale_url: str) -> Iterator[str]:
    """A new, empty database on the TimescaleDB cluster, pinned to TimescaleDB."""
    yield from _fresh(timescale_url, "timescale")
