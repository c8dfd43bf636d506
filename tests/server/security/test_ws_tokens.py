"""No bearer token or API key ever travels in the live socket's URL (issue 12, item 1).

On main the token came as ``?token=`` (uvicorn logs the handshake's URL at INFO), API keys were taken
the same way, and refusals closed the socket before accepting it (the browser sees 1006 and retries
forever). Now: the socket is accepted, the token comes in the first message, a credential in the URL
is refused even when valid, API keys are refused, and every refusal is a close after the accept."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import server.api.live as live_api
from server.auth.users import create_api_key
from tests.server.helpers import login
from tests.server.security.conftest import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _closed_after_accept(client: TestClient, url: str, first: object | None) -> int:
    """Open ``url`` (entering fails if the server closed before accepting), send ``first``, return the
    close code."""
    with client.websocket_connect(url) as ws:  # on main a refusal raised here: closed before accept
        if first is not None:
            ws.send_json(first)
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    return info.value.code


def test_token_in_the_url_is_refused_even_when_valid(
    client: TestClient, sec_env: tuple[FastAPI, str]
) -> None:
    token = login(client, sec_env[1], "police")
    assert _closed_after_accept(client, f"/api/v1/live/ws?token={token}", None) == 4401
    # The same token in the auth message opens the stream.
    with live(client, token) as ws:
        assert ws.receive_json()["type"] == "snapshot"


def test_api_keys_are_refused_on_the_socket(client: TestClient, sec_env: tuple[FastAPI, str]) -> None:
    key = create_api_key(sec_env[1], f"k-{uuid.uuid4().hex[:6]}", "operator", "tests")
    assert client.get("/api/v1/live/cameras", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert _closed_after_accept(client, "/api/v1/live/ws", {"type": "auth", "token": key}) == 4401
    assert _closed_after_accept(client, f"/api/v1/live/ws?token={key}", None) == 4401


def test_every_refusal_is_a_close_after_the_accept(
    client: TestClient, sec_env: tuple[FastAPI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_api, "AUTH_TIMEOUT_S", 0.3)
    url = "/api/v1/live/ws"
    assert _closed_after_accept(client, url, None) == 4401  # no auth message in time
    assert _closed_after_accept(client, url, {"type": "auth", "token": "forged"}) == 4401
    assert _closed_after_accept(client, url, {"type": "hello"}) == 4401
    planner = login(client, sec_env[1], "planner")
    assert _closed_after_accept(client, url, {"type": "auth", "token": planner}) == 4403


def test_the_web_app_never_puts_the_token_in_the_socket_url() -> None:
    from server.web.routes import STATIC

    js = (STATIC / "api.js").read_text(encoding="utf-8")
    assert "?token=" not in js and "token=${" not in js
    assert '"auth"' in js
