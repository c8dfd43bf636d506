"""The demo's private Mosquitto is not anonymous (issue 12, item 10): a password file and ACL written
for each run, the server's and the demo edge's logins, nothing for anyone else. On main it was
``allow_anonymous true``: the anonymous connection below was accepted."""

from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from citywatch.demo import _broker
from citywatch.site import load_site
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _connects(url: str, login: tuple[str, str] | None) -> bool:
    host, port = url.removeprefix("mqtt://").split(":")
    done, result = threading.Event(), []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:6]}")
    if login is not None:
        client.username_pw_set(*login)

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: ReasonCode, p: object) -> None:
        result.append(not rc.is_failure)
        done.set()

    client.on_connect = on_connect
    client.connect(host, int(port))
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.loop_stop()
        client.disconnect()
    return result[0]


def test_the_demo_broker_takes_only_its_own_logins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("no Mosquitto binary: the demo falls back to the loopback-only amqtt broker")
    monkeypatch.delenv("MQTT_URL", raising=False)
    site = load_site(ROOT / "config" / "quynhon.yaml", env={})
    with _broker(tmp_path, site) as (url, logins):
        assert logins is not None
        assert "password" not in repr(logins) and logins.server[1] not in repr(logins)
        assert not _connects(url, None)  # anonymous: refused
        assert not _connects(url, (logins.server[0], "wrong"))
        assert _connects(url, logins.server) and _connects(url, logins.edge)
    assert (tmp_path / "mosquitto-auth" / "passwd").stat().st_mode & 0o077 == 0  # owner-only
