"""Open live sockets are checked again (issue 12, item 2): a user who is disabled, changed by an admin
or whose token expires is closed with 4401/4403 (after the accept). On main such a socket kept
receiving live incidents until the client went away.

Each test makes the server send a change after the event: on main that change arrives instead of the
close, so the test fails rather than hangs."""

from __future__ import annotations

import time

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from server.auth import tokens
from server.ingest.writer import LIVE_CHANNEL
from tests.server.helpers import login
from tests.server.security.conftest import RECHECK_S, SECRET, live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _me(client: TestClient) -> str:
    return str(client.get("/api/v1/auth/me").json()["username"])


def _nudge(dsn: str) -> None:
    """A committed change on a camera everyone sees (what the ingest writer NOTIFYs)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, '{"cameras": ["cam-a"]}'))


def _close_code(ws: WebSocketTestSession, dsn: str, after_s: float = 0.0) -> int:
    time.sleep(after_s)
    _nudge(dsn)
    for _ in range(3):  # the change above may race ahead of the close
        try:
            msg = ws.receive_json()
        except WebSocketDisconnect as exc:
            return exc.code
        assert msg["type"] == "change", msg
    raise AssertionError("the socket stayed open")


def test_disabled_by_an_admin_is_closed_at_once(client: TestClient, sec_env: tuple[FastAPI, str]) -> None:
    _, dsn = sec_env
    admin = TestClient(sec_env[0])  # shares the open app (no second lifespan)
    login(admin, dsn, "admin")
    token = login(client, dsn, "police")
    name = _me(client)
    with live(client, token) as ws:
        assert ws.receive_json()["type"] == "snapshot"
        started = time.monotonic()
        assert admin.patch(f"/api/v1/users/{name}", json={"disabled": True}).status_code == 200
        assert _close_code(ws, dsn) == 4401
        assert time.monotonic() - started < 5


def test_demoted_to_planner_is_closed(client: TestClient, sec_env: tuple[FastAPI, str]) -> None:
    _, dsn = sec_env
    admin = TestClient(sec_env[0])  # shares the open app (no second lifespan)
    login(admin, dsn, "admin")
    token = login(client, dsn, "police")
    name = _me(client)
    with live(client, token) as ws:
        assert ws.receive_json()["type"] == "snapshot"
        assert admin.patch(f"/api/v1/users/{name}", json={"role": "planner"}).status_code == 200
        assert _close_code(ws, dsn) in {4401, 4403}


def test_disabled_behind_the_apis_back_is_closed_by_the_periodic_check(
    client: TestClient, sec_env: tuple[FastAPI, str]
) -> None:
    _, dsn = sec_env
    token = login(client, dsn, "operator")
    name = _me(client)
    with live(client, token) as ws:
        assert ws.receive_json()["type"] == "snapshot"
        with psycopg.connect(dsn, autocommit=True) as conn:  # no notification: only the timer sees it
            conn.execute("UPDATE users SET disabled = true WHERE username = %s", (name,))
        assert _close_code(ws, dsn, after_s=RECHECK_S * 3) == 4401


def test_an_expiring_token_closes_its_socket(client: TestClient, sec_env: tuple[FastAPI, str]) -> None:
    _, dsn = sec_env
    login(client, dsn, "police")
    name = _me(client)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT token_version FROM users WHERE username = %s", (name,)).fetchone()
    assert row is not None
    short = tokens.issue(SECRET, name, int(row[0]), ttl_s=2)
    with live(client, short) as ws:
        assert ws.receive_json()["type"] == "snapshot"
        assert _close_code(ws, dsn, after_s=3.5) == 4401
