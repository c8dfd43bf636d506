"""Security pass: no secret ever reaches a log. A full run with every secret configured: a private
Mosquitto with the generated password file and ACL (no anonymous access), a real edge worker on a real
clip logging in as its group's user, the real server logging in as ``citywatch-server`` with a DSN that
carries a password, a signing key for tokens, a webhook secret, users logging in (right and wrong
passwords), an API key made and used, the live WebSocket opened (and offered a token and an API key in
its URL, which it refuses). Then every log and every command output is searched for each
secret; the test also checks that the run really happened (messages stored, alert delivered, logins)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from citywatch.broker_auth import read_env_file, write_auth_files
from citywatch.site import load_site
from tests.conftest import MODEL_PATH, VIDEOS, need_shared
from tests.mosquitto import Broker, free_port
from tests.server.alerting.peers import WebhookReceiver, webhook_server
from tests.server.helpers import poll
from tests.server.server_proc import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.model]

DB_PASSWORD = "db-Pa55w0rd-never-logged"  # trust auth ignores it, but it is in the DSN everywhere
JWT_SECRET = "jwt-signing-key-" + uuid.uuid4().hex
HOOK_SECRET = "hook-secret-" + uuid.uuid4().hex
USER_PASSWORD = "officer-passw0rd-" + uuid.uuid4().hex[:8]
WRONG_PASSWORD = "wrong-guess-" + uuid.uuid4().hex[:8]


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{DB_PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _socket(url: str, first: dict[str, str] | None) -> str | int | None:
    """The first message's type, or the close code."""
    with connect(url, open_timeout=10) as ws:
        if first is not None:
            ws.send(json.dumps(first))
        try:
            return str(json.loads(ws.recv(timeout=15))["type"])
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None


def test_no_secret_in_any_log(tmp_path: Path, fresh_db: str, unique: str) -> None:
    video = need_shared(VIDEOS / "vn-hcmc-motorbikes-wrongway.mp4")
    model = need_shared(MODEL_PATH)
    prefix = f"sec{unique}"
    receiver = WebhookReceiver(HOOK_SECRET)
    with webhook_server(receiver) as hook_url:
        site_path = tmp_path / "site.yaml"
        site_path.write_text(
            f"""
site: {{id: sec, name: Sec, timezone: Asia/Ho_Chi_Minh, center: {{lat: 13.77, lon: 109.22}}, bin_seconds: 2}}
mqtt_prefix: {prefix}
cameras:
  - id: cam-a
    name: A
    group: grp-a
    location: {{lat: 13.7762, lon: 109.2218}}
    source: {{kind: file, path: "{video}", loop: true}}
    detector: {{model: "{model}", max_fps: 4}}
    lines:
      - id: L1
        points: [[0.0, 0.6], [1.0, 0.6]]
        directions: {{positive: southbound, negative: northbound}}
    rules: [{{id: tamper, type: tampering}}]
alerting:
  channels:
    hook: {{kind: webhook, url: "{hook_url}", secret: "${{HOOK_SECRET}}"}}
  rules:
    - {{id: all, channels: [hook, live]}}
""",
            encoding="utf-8",
        )
        site = load_site(site_path, env={"HOOK_SECRET": HOOK_SECRET})
        env_file = tmp_path / ".env"
        files = write_auth_files(site, tmp_path / "auth", env_file, environ={})
        mqtt_secrets = read_env_file(env_file)
        broker = Broker(
            tmp_path / "broker",
            f"password_file {files.passwd}\nacl_file {files.acl}\n",
            allow_anonymous=False,
        )
        broker.start()
        dsn = _with_password(fresh_db)
        server = ServerProcess(
            {
                "DATABASE_URL": dsn,
                "MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
                "MQTT_USERNAME": "citywatch-server",
                "MQTT_PASSWORD": mqtt_secrets["MQTT_SERVER_PASSWORD"],
                "MQTT_CLIENT_ID": f"sec-{unique}",
                "CITYWATCH_SITE": str(site_path),
                "CITYWATCH_JWT_SECRET": JWT_SECRET,
                "HOOK_SECRET": HOOK_SECRET,
            },
            tmp_path / "server.log",
        )
        edge_log = tmp_path / "edge.log"
        edge = None
        outputs: list[str] = []
        issued: list[str] = []
        try:
            server.start()
            add = subprocess.run(
                [str(Path(sys.executable).with_name("citywatch")), "server", "user", "add", "officer",
                 "--role", "police", "--password-stdin"],
                input=USER_PASSWORD + "\n", env={**server.env}, capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert add.returncode == 0, add.stderr
            outputs += [add.stdout, add.stderr]
            edge_env = {
                **os.environ,
                "MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
                "MQTT_USERNAME": "edge-grp-a",
                "MQTT_PASSWORD": mqtt_secrets["MQTT_EDGE_GRP_A_PASSWORD"],
                "CITYWATCH_HEARTBEAT_S": "1",
                "HOOK_SECRET": HOOK_SECRET,
            }
            edge = subprocess.Popen(
                [sys.executable, "-m", "citywatch.cli", "edge", "run", "--site", str(site_path), "--edge-id",
                 "sec-edge", "--outbox", str(tmp_path / "outbox"), "--metrics-port", str(free_port())],
                env=edge_env, stdout=edge_log.open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            base = server.url
            bad = httpx.post(
                f"{base}/api/v1/auth/token", data={"username": "officer", "password": WRONG_PASSWORD}
            )
            assert bad.status_code == 401
            good = httpx.post(
                f"{base}/api/v1/auth/token", data={"username": "officer", "password": USER_PASSWORD}
            )
            assert good.status_code == 200
            token = good.json()["access_token"]
            issued.append(token)
            key = httpx.post(
                f"{base}/api/v1/api-keys",
                json={"name": "scraper", "role": "operator"},
                headers=server.headers,
            ).json()["key"]
            issued.append(key)
            assert httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            assert (
                httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}x"}).status_code
                == 401
            )
            # The live socket, as the web app opens it (token in a message) and as it must not be
            # opened (a token or an API key in the URL: uvicorn logs the handshake's URL).
            ws_url = f"ws://127.0.0.1:{server.port}/api/v1/live/ws"
            assert _socket(ws_url, {"type": "auth", "token": token}) == "snapshot"
            assert _socket(f"{ws_url}?token={token}", None) == 4401
            assert _socket(f"{ws_url}?token={key}", None) == 4401
            assert _socket(ws_url, {"type": "auth", "token": key}) == 4401

            # The run is real: the edge's counts are stored (it logged in) ...
            def stored() -> int:
                with psycopg.connect(fresh_db) as conn:
                    row = conn.execute("SELECT count(*) FROM processed_messages").fetchone()
                    return int(row[0]) if row else 0

            assert poll(stored, lambda n: n >= 3, timeout=90) >= 3, edge_log.read_text(errors="replace")[
                -3000:
            ]
        finally:
            if edge is not None:
                edge.send_signal(signal.SIGINT)
                try:
                    edge.wait(60)
                except subprocess.TimeoutExpired:
                    edge.kill()
            server.stop()
            broker.stop()

    logs = {
        "server": server.log_tail(10_000_000),
        "edge": edge_log.read_text(errors="replace"),
        "broker": (tmp_path / "broker" / "mosquitto.log").read_text(errors="replace")
        if (tmp_path / "broker" / "mosquitto.log").exists()
        else "",
        "commands": "\n".join(outputs),
    }
    secrets = {
        "database password": DB_PASSWORD,
        "token signing key": JWT_SECRET,
        "webhook secret": HOOK_SECRET,
        "user password": USER_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        **{f"mqtt {k}": v for k, v in mqtt_secrets.items()},
        **{f"issued credential {i}": v for i, v in enumerate(issued)},
    }
    leaks = [
        f"{what} in the {where} log"
        for what, s in secrets.items()
        for where, text in logs.items()
        if s in text
    ]
    assert not leaks, leaks
    # The logs are the real ones of this run (the searched text is not empty by mistake).
    assert "connected to the broker" in logs["server"] and "camera cam-a" in logs["edge"]
    assert "WebSocket /api/v1/live/ws" in logs["server"]  # the handshake lines are in the searched log
