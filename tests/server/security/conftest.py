"""Fixtures of the security tests: the real app on a fresh, migrated database (two cameras in two
groups, so scoping can be checked), with the live re-check and per-user limits set low."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from citywatch.site import SiteConfig, load_site
from server.app import create_app
from server.db.migrate import migrate
from server.settings import Settings
from tests.server.helpers import write_site

SECRET = "s" * 40
SITE = "secsite"
RECHECK_S = 0.5
SOCKETS_PER_USER = 2


@pytest.fixture(scope="module")
def sec_env(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[FastAPI, str]:
    path = write_site(tmp_path_factory.mktemp("site"), SITE, "citywatch", ["cam-a", "cam-b"])
    path.write_text(
        path.read_text().replace('name: "Camera cam-b"', 'name: "Camera cam-b"\n    group: harbour')
    )
    site = load_site(path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone, "off")  # plain PostgreSQL is enough here
    return make_app(fresh_db, site), fresh_db


def make_app(dsn: str, site: SiteConfig, **env: str) -> FastAPI:
    settings = Settings.from_env(
        {
            "DATABASE_URL": dsn,
            "CITYWATCH_JWT_SECRET": SECRET,
            "CITYWATCH_LIVE_RECHECK_S": str(RECHECK_S),
            "CITYWATCH_LIVE_SOCKETS_PER_USER": str(SOCKETS_PER_USER),
            **env,
        }
    )
    return create_app(settings, site, ingest=False)


@pytest.fixture
def client(sec_env: tuple[FastAPI, str]) -> Iterator[TestClient]:
    with TestClient(sec_env[0]) as c:
        yield c


@contextmanager
def live(client: TestClient, token: str) -> Iterator[WebSocketTestSession]:
    """The live socket as the web app opens it: no credential in the URL, the token in a message."""
    with client.websocket_connect("/api/v1/live/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        yield ws


def bearer(client: TestClient) -> str:
    auth: Any = client.headers["Authorization"]
    return str(auth).split()[1]
