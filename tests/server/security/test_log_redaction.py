"""No credential in the server's log (issue 12, item 1), shown with the real server process: the live
socket is opened the right way (token in a message) and the wrong ways (a token and an API key in its
URL, which old clients or an attacker may still send), then the whole log is searched.

On main the token travelled in the URL and uvicorn's handshake line (``uvicorn.error`` at INFO) printed
it, for accepted and refused sockets alike; there was no redaction."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from citywatch.logs import REDACTED, RedactingFilter, redact
from server.auth.users import create_user
from tests.server.helpers import PASSWORD, write_site
from tests.server.server_proc import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvZmZpY2VyIn0.c2lnbmF0dXJlLXBhcnQ"
KEY = "cwk_" + "A1b2C3d4E5f6G7h8I9j0" * 2


@pytest.mark.parametrize(
    "line",
    [
        f'127.0.0.1:5555 - "WebSocket /api/v1/live/ws?token={JWT}" [accepted]',
        f'127.0.0.1:5555 - "WebSocket /api/v1/live/ws?x=1&token={KEY}" 403',
        f"Authorization: Bearer {JWT}",
        f"headers=[(b'authorization', b'Bearer {KEY}')]",
        f"calling with {KEY} now",
        f"bare token {JWT} in a message",
    ],
)
def test_redaction_patterns(line: str) -> None:
    out = redact(line)
    assert JWT not in out and KEY not in out and REDACTED in out


def test_the_filter_redacts_arguments_and_tracebacks() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s"', ("c", f"/ws?token={JWT}"), None
    )
    try:
        raise ValueError(f"bad credential {KEY}")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert JWT not in text and KEY not in text and "WebSocket" in text and "ValueError" in text


def _close_code(url: str, first: dict[str, str] | None) -> int | None:
    with connect(url, open_timeout=10) as ws:
        if first is not None:
            ws.send(json.dumps(first))
        try:
            json.loads(ws.recv(timeout=15))
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        return None  # a message came: the socket was open


def test_the_server_log_holds_no_token_after_live_sockets(fresh_db: str, tmp_path: Path, unique: str) -> None:
    site = write_site(tmp_path, "redact", f"red{unique}", ["cam-a"])
    server = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "CITYWATCH_SITE": str(site),
            "CITYWATCH_JWT_SECRET": "k" * 40,
            "MQTT_CLIENT_ID": f"redact-{unique}",
            "CITYWATCH_TIMESCALE": "off",
        },
        tmp_path / "server.log",
    )
    try:
        server.start()
        name = f"officer-{uuid.uuid4().hex[:6]}"
        create_user(fresh_db, name, PASSWORD, "police")
        token = httpx.post(
            f"{server.url}/api/v1/auth/token", data={"username": name, "password": PASSWORD}
        ).json()["access_token"]
        assert server.api_key is not None
        ws_url = f"ws://127.0.0.1:{server.port}/api/v1/live/ws"
        assert _close_code(ws_url, {"type": "auth", "token": token}) is None  # the right way: data
        assert _close_code(f"{ws_url}?token={token}", None) == 4401  # a token in the URL: refused
        assert _close_code(f"{ws_url}?token={server.api_key}", None) == 4401
        assert _close_code(ws_url, {"type": "auth", "token": server.api_key}) == 4401  # no API keys
    finally:
        server.stop()
    log = server.log_tail(10_000_000)
    assert "WebSocket /api/v1/live/ws" in log  # uvicorn's handshake lines are there ...
    assert f"token={REDACTED}" in log  # ... with the URL's credential redacted
    assert token not in log and server.api_key not in log
    assert token.split(".")[2] not in log  # not even the token's signature
