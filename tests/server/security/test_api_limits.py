"""Denial of service through the API and the live socket (issue 12, item 7, socket and API parts):
a per-user request rate (429 with Retry-After), a cap on live sockets per user, and one computation
per change per camera scope fanned out to every socket of that scope.

How main failed: no per-user limit (every request answered), any number of sockets per user, and each
socket ran its own queries for every change (there was no registry of scopes at all)."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from citywatch.site import SiteConfig
from server.ingest.writer import LIVE_CHANNEL
from tests.server.helpers import login
from tests.server.security.conftest import SOCKETS_PER_USER, live, make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_per_user_request_rate(sec_env: tuple[FastAPI, str]) -> None:
    app, dsn = sec_env
    site: SiteConfig = app.state.site
    limited = make_app(dsn, site, CITYWATCH_API_RATE="0.5", CITYWATCH_API_BURST="5")
    with TestClient(limited) as greedy, TestClient(limited) as other:
        login(greedy, dsn, "operator")
        login(other, dsn, "operator")
        codes = [greedy.get("/api/v1/auth/me").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and 429 in codes[5:], codes
        over = greedy.get("/api/v1/live/cameras")
        assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
        assert other.get("/api/v1/auth/me").status_code == 200  # one user's excess is not another's


def test_live_sockets_per_user_are_capped(client: TestClient, sec_env: tuple[FastAPI, str]) -> None:
    token = login(client, sec_env[1], "police")
    with live(client, token) as first, live(client, token) as second:
        assert first.receive_json()["type"] == second.receive_json()["type"] == "snapshot"
        assert SOCKETS_PER_USER == 2
        with client.websocket_connect("/api/v1/live/ws") as third:
            third.send_json({"type": "auth", "token": token})
            with pytest.raises(WebSocketDisconnect) as info:
                third.receive_json()
        assert info.value.code == 4429
    with live(client, token) as again:  # closing gives the slots back
        assert again.receive_json()["type"] == "snapshot"


def test_one_change_is_computed_once_per_scope(client: TestClient, sec_env: tuple[FastAPI, str]) -> None:
    app, dsn = sec_env
    sockets = []
    b, c, d = TestClient(app), TestClient(app), TestClient(app)  # share the open app (no lifespan)
    tokens = [login(x, dsn, "police", groups=["default"]) for x in (client, b, c)]
    tokens.append(login(d, dsn, "police", groups=["harbour"]))
    with (
        live(client, tokens[0]) as s1,
        live(b, tokens[1]) as s2,
        live(c, tokens[2]) as s3,
        live(d, tokens[3]) as s4,
    ):
        sockets = [s1, s2, s3, s4]
        for s in sockets:
            assert s.receive_json()["type"] == "snapshot"
        feeds = app.state.live.feeds
        assert sorted(len(f.sockets) for f in feeds.values()) == [1, 3]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, '{"cameras": ["cam-a", "cam-b"]}'))
        got = [s.receive_json() for s in sockets]
        assert [[cam["camera_id"] for cam in m["cameras"]] for m in got] == [["cam-a"]] * 3 + [["cam-b"]]
        assert sorted(f.computed for f in feeds.values()) == [1, 1]  # not 3 + 1
    assert not app.state.live.feeds  # every feed stops with its last socket
