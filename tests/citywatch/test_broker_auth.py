"""`citywatch broker auth`: the generated passwd and ACL, enforced by a real Mosquitto."""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from citywatch.broker_auth import (
    SERVER_USER,
    BrokerAuthError,
    edge_password_var,
    hash_password,
    read_env_file,
    render_acl,
    verify_password,
    write_auth_files,
)
from citywatch.broker_cli import register
from citywatch.site import load_site, parse_site
from tests.conftest import ROOT
from tests.mosquitto import Broker

SITE = """
site: {{id: tsite, name: T, timezone: UTC, center: {{lat: 1, lon: 1}}}}
mqtt_prefix: {prefix}
cameras:
  - {{id: cam-a1, name: A1, location: {{lat: 1, lon: 1}}, group: grp-a, source: {{kind: webcam, index: 0}}}}
  - {{id: cam-a2, name: A2, location: {{lat: 1, lon: 1}}, group: grp-a, source: {{kind: webcam, index: 0}}}}
  - {{id: cam-b1, name: B1, location: {{lat: 1, lon: 1}}, group: grp-b, source: {{kind: webcam, index: 0}}}}
"""


def _site(prefix: str = "cwt") -> str:
    return SITE.format(prefix=prefix)


# --------------------------------------------------------------------------------------------------
# Unit tests: no broker


@pytest.mark.parametrize(
    ("group", "var"),
    [
        pytest.param("centre", "MQTT_EDGE_CENTRE_PASSWORD", id="plain"),
        pytest.param("grp-a", "MQTT_EDGE_GRP_A_PASSWORD", id="dash"),
        pytest.param("North_2", "MQTT_EDGE_NORTH_2_PASSWORD", id="mixed-case"),
    ],
)
def test_edge_password_variable(group: str, var: str) -> None:
    assert edge_password_var(group) == var


def test_acl_grants_each_edge_only_its_cameras() -> None:
    acl = render_acl(parse_site(_site()), "t.yaml")
    sections = {block.split("\n")[0]: block for block in acl.split("\nuser ")[1:]}
    assert set(sections) == {SERVER_USER, "edge-grp-a", "edge-grp-b"}
    assert "topic write cwt/v1/tsite/cam-a1/#" in sections["edge-grp-a"]
    assert "topic write cwt/v1/tsite/cam-a2/#" in sections["edge-grp-a"]
    assert "cam-b1" not in sections["edge-grp-a"]
    assert "topic read cwt/v1/#" in sections[SERVER_USER]
    assert "topic write cwt/alerts/#" in sections[SERVER_USER]
    assert "topic write cwt/acks/#" in sections[SERVER_USER]
    assert "topic read cwt/acks/v1/tsite/cam-a1" in sections["edge-grp-a"]
    assert "acks/v1/tsite/cam-b1" not in sections["edge-grp-a"]
    assert "password" not in acl.lower()


def test_committed_acl_matches_the_site_config() -> None:
    """deploy/mosquitto/acl is generated; this fails when cameras change and it was not regenerated."""
    site = ROOT / "config" / "quynhon.yaml"
    expected = render_acl(load_site(site), "config/quynhon.yaml")
    assert (ROOT / "deploy" / "mosquitto" / "acl").read_text(encoding="utf-8") == expected


def test_hash_round_trip_and_wrong_password() -> None:
    encoded = hash_password("s3cret", iterations=50)
    assert encoded.startswith("$7$50$")
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret ", encoded)
    with pytest.raises(BrokerAuthError):
        verify_password("x", "$6$abc$def")


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_hash_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(ref), "alice", "pa:ss w0rd"], check=True)
    user, encoded = ref.read_text(encoding="utf-8").strip().split(":", 1)
    assert user == "alice"
    assert verify_password("pa:ss w0rd", encoded)
    assert not verify_password("other", encoded)
    ours = hash_password("x")
    # Same shape: $7$<iterations>$<16 base64 chars = 12-byte salt>$<88 base64 chars = 64-byte hash>
    assert [len(p) for p in ours.split("$")[3:]] == [len(p) for p in encoded.split("$")[3:]]
    assert ours.split("$")[:3] == encoded.split("$")[:3]


def test_passwords_from_env_file_environment_or_generated(tmp_path: Path) -> None:
    cfg = parse_site(_site())
    env_file = tmp_path / ".env"
    env_file.write_text("DB_PASSWORD=keep\nMQTT_EDGE_GRP_A_PASSWORD='from-file'", encoding="utf-8")
    env_file.chmod(0o644)
    files = write_auth_files(cfg, tmp_path / "out", env_file, environ={"MQTT_SERVER_PASSWORD": "from-env"})

    assert files.generated == ["MQTT_EDGE_GRP_B_PASSWORD"]
    values = read_env_file(env_file)
    assert values["DB_PASSWORD"] == "keep"
    assert values["MQTT_EDGE_GRP_A_PASSWORD"] == "from-file"
    assert "MQTT_SERVER_PASSWORD" not in values  # taken from the environment, not copied to disk
    generated = values["MQTT_EDGE_GRP_B_PASSWORD"]
    assert len(generated) >= 32
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.passwd.stat().st_mode) == 0o600

    hashes = dict(line.split(":", 1) for line in files.passwd.read_text(encoding="utf-8").splitlines())
    assert verify_password("from-env", hashes[SERVER_USER])
    assert verify_password("from-file", hashes["edge-grp-a"])
    assert verify_password(generated, hashes["edge-grp-b"])

    # A second run reuses every password instead of generating new ones.
    again = write_auth_files(cfg, tmp_path / "out", env_file, environ={"MQTT_SERVER_PASSWORD": "from-env"})
    assert again.generated == []
    assert read_env_file(env_file)["MQTT_EDGE_GRP_B_PASSWORD"] == generated


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_passwd_handed_to_the_broker_user(tmp_path: Path) -> None:
    files = write_auth_files(parse_site(_site()), tmp_path / "out", tmp_path / ".env", owner=(1883, 1883))
    st = files.passwd.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1883, 1883, 0o600)


def test_cli_never_prints_passwords(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(_site(), encoding="utf-8")
    env_file = tmp_path / ".env"
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["broker", "auth", "--site", str(site), "--out", str(tmp_path / "out"), "--env-file", str(env_file)]
    )
    assert args.handler(args) == 0
    out = capsys.readouterr()
    secrets = [v for k, v in read_env_file(env_file).items() if k.startswith("MQTT_")]
    assert len(secrets) == 3
    assert all(s not in out.out + out.err for s in secrets)
    assert "MQTT_EDGE_GRP_B_PASSWORD" in out.out


# --------------------------------------------------------------------------------------------------
# Integration: a private Mosquitto with allow_anonymous false, the generated passwd and acl


class Client:
    """A paho MQTT v5 client whose callbacks only enqueue."""

    def __init__(self, port: int, user: str | None, password: str | None, name: str) -> None:
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.acked = threading.Condition()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5, reconnect_on_failure=False
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(list(rcs))
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode, props: Properties
    ) -> None:
        with self.acked:
            self.pubacks[mid] = rc
            self.acked.notify_all()

    def connected(self) -> ReasonCode:
        return self.connack.get(timeout=10)

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK reason code (MQTT v5 reports denials there)."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.pubacks, timeout=10)
            return self.pubacks.pop(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def secured(tmp_path: Path, unique: str) -> Iterator[tuple[Broker, str, dict[str, str]]]:
    prefix = f"cwt{unique}"
    cfg = parse_site(_site(prefix))
    env_file = tmp_path / ".env"
    files = write_auth_files(cfg, tmp_path / "auth", env_file, environ={})
    values = read_env_file(env_file)
    passwords = {
        SERVER_USER: values["MQTT_SERVER_PASSWORD"],
        "edge-grp-a": values["MQTT_EDGE_GRP_A_PASSWORD"],
        "edge-grp-b": values["MQTT_EDGE_GRP_B_PASSWORD"],
    }
    broker = Broker(
        tmp_path / "broker",
        # The Broker helper keeps the test's own user (deployments hand the file over with --owner).
        f"password_file {files.passwd}\nacl_file {files.acl}\n",
        allow_anonymous=False,
    )
    broker.start()
    try:
        yield broker, prefix, passwords
    finally:
        broker.stop()


@pytest.mark.integration
def test_anonymous_and_wrong_password_are_refused(secured: tuple[Broker, str, dict[str, str]]) -> None:
    broker, _, passwords = secured
    anonymous = Client(broker.port, None, None, "anon")
    wrong = Client(broker.port, "edge-grp-a", passwords["edge-grp-b"], "wrong")
    unknown = Client(broker.port, "nobody", "x", "nobody")
    good = Client(broker.port, "edge-grp-a", passwords["edge-grp-a"], "good")
    try:
        assert anonymous.connected().is_failure
        assert wrong.connected().is_failure
        assert unknown.connected().is_failure
        assert not good.connected().is_failure  # the same broker does let a right password in
    finally:
        for c in (anonymous, wrong, unknown, good):
            c.close()


@pytest.mark.integration
def test_edges_publish_only_their_own_cameras(secured: tuple[Broker, str, dict[str, str]]) -> None:
    broker, prefix, pw = secured
    server = Client(broker.port, SERVER_USER, pw[SERVER_USER], "server")
    edge_a = Client(broker.port, "edge-grp-a", pw["edge-grp-a"], "edge-a")
    try:
        assert not server.connected().is_failure
        assert not edge_a.connected().is_failure
        assert not server.subscribe(f"{prefix}/v1/#")[0].is_failure

        own = f"{prefix}/v1/tsite/cam-a1/incident"
        assert not edge_a.publish(own, b"control-1").is_failure
        assert server.messages.get(timeout=10) == (own, b"control-1")

        other = f"{prefix}/v1/tsite/cam-b1/incident"
        denied = edge_a.publish(other, b"forged")
        assert denied.is_failure  # MQTT v5: PUBACK 0x87 Not authorized

        # Mosquitto handles one client's publishes in order: had the forged one been routed, it would
        # reach the subscriber before this second control message.
        assert not edge_a.publish(own, b"control-2").is_failure
        assert server.messages.get(timeout=10) == (own, b"control-2")
        assert server.messages.empty()
    finally:
        server.close()
        edge_a.close()


@pytest.mark.integration
def test_server_reads_but_cannot_publish_camera_topics(secured: tuple[Broker, str, dict[str, str]]) -> None:
    broker, prefix, pw = secured
    server = Client(broker.port, SERVER_USER, pw[SERVER_USER], "server")
    shared = Client(broker.port, SERVER_USER, pw[SERVER_USER], "server-shared")
    edge_b = Client(broker.port, "edge-grp-b", pw["edge-grp-b"], "edge-b")
    try:
        for c in (server, shared, edge_b):
            assert not c.connected().is_failure
        assert not server.subscribe(f"{prefix}/v1/#")[0].is_failure
        # The server's ingest uses a shared subscription; the ACL applies to the topic behind it.
        assert not shared.subscribe(f"$share/ingest/{prefix}/v1/+/+/+")[0].is_failure
        edge_b.subscribe(f"{prefix}/v1/#")  # granted or not, the ACL gives edges nothing to read

        camera = f"{prefix}/v1/tsite/cam-b1/counts"
        assert server.publish(camera, b"forged").is_failure
        assert not server.publish(f"{prefix}/alerts/tsite/intrusion", b"{}").is_failure

        # The denial was answered before this control message was sent, so order is meaningful.
        assert not edge_b.publish(camera, b"control").is_failure
        assert server.messages.get(timeout=10) == (camera, b"control")
        assert shared.messages.get(timeout=10) == (camera, b"control")
        assert server.messages.empty()
        with pytest.raises(queue.Empty):  # edges have no read grant, not even for their own topics
            edge_b.messages.get(timeout=1)

        # The compose health check reads $SYS/broker/uptime as the server user (retained by the broker).
        assert not server.subscribe("$SYS/broker/uptime")[0].is_failure
        topic, _ = server.messages.get(timeout=15)
        assert topic == "$SYS/broker/uptime"
    finally:
        for c in (server, shared, edge_b):
            c.close()
