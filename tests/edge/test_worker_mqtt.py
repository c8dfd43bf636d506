"""`citywatch edge run` with the real model on a real clip, through a real Mosquitto that goes away.

The broker is down when the worker starts and is stopped again mid-run; the test compares every
sequence number the worker produced (its outbox's counter) with what a subscriber received.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract import CountsMessage, HeartbeatMessage, StatusMessage, StreamState, parse_message, parse_topic
from tests.conftest import MODEL_PATH, VIDEOS, need_shared
from tests.mosquitto import Broker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.model]


class Collector:
    """A persistent-session QoS 1 subscriber: the broker queues for it while it is away."""

    def __init__(self, port: int, prefix: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"collector-{prefix}", clean_session=False
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_edge_run_loses_nothing_when_the_broker_goes_away(
    tmp_path: Path, unique: str, request: pytest.FixtureRequest
) -> None:
    video = need_shared(VIDEOS / "vn-hcmc-motorbikes-wrongway.mp4")
    model = need_shared(MODEL_PATH)
    prefix = f"cwtest{unique}"
    broker = Broker(tmp_path / "broker")
    request.addfinalizer(broker.stop)  # it is left running at the end of the test
    broker.start()
    collector = Collector(broker.port, prefix)
    assert collector.subscribed.wait(10)
    broker.stop()  # the broker is down when the worker starts
    # The collector's session (and what is queued for it) survives the restart only if it was saved.
    assert (tmp_path / "broker" / "mosquitto.db").exists(), "the broker could not save its sessions"

    site = tmp_path / "site.yaml"
    site.write_text(
        f"""
site: {{id: it, name: IT, timezone: Asia/Ho_Chi_Minh, center: {{lat: 13.77, lon: 109.22}}, bin_seconds: 2}}
mqtt_prefix: {prefix}
cameras:
  - id: cam-a
    name: A
    location: {{lat: 13.7762, lon: 109.2218}}
    source: {{kind: file, path: "{video}", loop: true}}
    detector: {{model: "{model}", max_fps: 6}}
    lines:
      - id: L1
        points: [[0.0, 0.6], [1.0, 0.6]]
        directions: {{positive: southbound, negative: northbound}}
    rules: [{{id: tamper, type: tampering}}]
""",
        encoding="utf-8",
    )
    metrics_port = free_port()
    # No server here: messages leave the outbox on the broker's PUBACK.
    env = dict(
        os.environ,
        MQTT_URL=f"mqtt://127.0.0.1:{broker.port}",
        CITYWATCH_HEARTBEAT_S="1",
        CITYWATCH_DELIVERY="broker",
    )
    proc = _start_edge(tmp_path, site, "it-edge", metrics_port, env)
    try:
        # Broker down: the worker runs and buffers on disk.
        assert _wait(lambda: _try_metric(metrics_port, "citywatch_edge_outbox_depth") >= 3, 60), _tail(
            tmp_path
        )
        assert _try_metric(metrics_port, "citywatch_edge_frames_analysed_total") > 0
        broker.start()
        assert _wait(lambda: len(collector.snapshot()) >= 5, 30), _tail(tmp_path)
        time.sleep(3)
        broker.stop()  # and away again, mid-run
        time.sleep(4)
        broker.start()
        time.sleep(6)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, _tail(tmp_path)

    db = sqlite3.connect(tmp_path / "outbox" / "it-edge.sqlite3")
    produced = db.execute("SELECT seq FROM seqs WHERE camera_id = 'cam-a'").fetchone()[0]
    left = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert left == 0, "everything was acknowledged before the worker stopped"

    def received_seqs() -> set[int]:
        return {parse_message(p).seq for t, p, _ in collector.snapshot() if not t.endswith("/status")}

    expected = set(range(1, produced + 1))
    assert _wait(lambda: received_seqs() >= expected, 45), (
        f"missing seqs {sorted(expected - received_seqs())} of {produced}\n{_tail(tmp_path)}\n"
        + (tmp_path / "broker" / "mosquitto.log").read_text(errors="replace")[-2000:]
    )
    collector.close()

    parsed = [(t, parse_message(p, parse_topic(t, prefix=prefix)), r) for t, p, r in collector.snapshot()]
    data = [m for _, m, _ in parsed if not isinstance(m, StatusMessage)]
    assert produced >= 10
    assert sorted({m.seq for m in data}) == list(range(1, produced + 1))  # nothing lost
    assert len({m.msg_id for m in data}) == len({m.seq for m in data})  # a re-sent message keeps its id
    counts = [m for m in data if isinstance(m, CountsMessage)]
    beats = [m for m in data if isinstance(m, HeartbeatMessage)]
    assert counts and beats
    assert all(m.edge_id == "it-edge" and m.camera_id == "cam-a" for m in data)
    crossings = [(c.direction, c.cls) for m in counts for c in m.lines]
    assert crossings, "the clip has motorbikes crossing L1"
    assert {d for d, _ in crossings} <= {"northbound", "southbound"}
    assert {c for _, c in crossings} <= {"motorcycle", "car", "bus", "truck", "bicycle", "person"}
    states = [m.state for _, m, _ in parsed if isinstance(m, StatusMessage)]
    assert StreamState.ONLINE in states
    assert states[-1] is StreamState.OFFLINE  # the worker said goodbye on its status topic


def _start_edge(
    tmp_path: Path, site: Path, edge_id: str, metrics_port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = (tmp_path / "edge.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "citywatch.cli",
        "edge",
        "run",
        "--site",
        str(site),
        "--edge-id",
        edge_id,
        "--outbox",
        str(tmp_path / "outbox"),
        "--metrics-port",
        str(metrics_port),
    ]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _try_metric(port: int, name: str) -> float:
    try:
        return _metric(port, name)
    except OSError:
        return -1.0


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "edge.log").read_text(errors="replace")[-3000:]


def test_healthz_reports_a_bad_camera_while_the_good_one_runs(tmp_path: Path) -> None:
    video = need_shared(VIDEOS / "nl-motorway-overpass.mp4")
    model = need_shared(MODEL_PATH)
    site = tmp_path / "site.yaml"
    site.write_text(
        f"""
site: {{id: it2, name: IT, timezone: UTC, center: {{lat: 1, lon: 1}}}}
cameras:
  - {{id: good, name: G, location: {{lat: 1, lon: 1}}, source: {{kind: file, path: "{video}", loop: true}},
     detector: {{model: "{model}", max_fps: 5}}}}
  - {{id: not-a-video, name: B, location: {{lat: 1, lon: 1}}, source: {{kind: file, path: "{site}"}},
     detector: {{model: "{model}"}}}}
  - {{id: dead-stream, name: D, location: {{lat: 1, lon: 1}}, source: {{kind: stream, url: "rtsp://127.0.0.1:9/x"}},
     detector: {{model: "{model}"}}}}
  - {{id: no-model, name: M, location: {{lat: 1, lon: 1}}, source: {{kind: file, path: "{video}"}},
     detector: {{model: "{tmp_path}/missing_model"}}}}
""",
        encoding="utf-8",
    )
    port = free_port()
    env = dict(os.environ, MQTT_URL="mqtt://127.0.0.1:1")  # no broker either: it buffers
    proc = _start_edge(tmp_path, site, "it2", port, env)
    try:
        assert _wait(lambda: _try_metric(port, "citywatch_edge_frames_analysed_total") > 5, 60), _tail(
            tmp_path
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert info.value.code == 503
        health = json.loads(info.value.read())
        cams = health["cameras"]
        assert cams["good"]["processing"] and cams["good"]["stream_up"]
        assert "not a video" in cams["not-a-video"]["error"]
        assert not cams["dead-stream"]["stream_up"]
        assert "does not exist" in cams["no-model"]["error"]
        jpeg = urllib.request.urlopen(f"http://127.0.0.1:{port}/cameras/good/frame.jpg", timeout=5).read()
        assert jpeg[:2] == b"\xff\xd8"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    text = _tail(tmp_path)
    assert "this camera is down, the others keep running" in text
