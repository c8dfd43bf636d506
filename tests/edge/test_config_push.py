"""Pushed configs through the real broker to a running worker: cameras added, changed and removed
without stopping the others; a bad config rejected while every camera keeps running."""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.site import parse_site
from contract.fleet import EdgeConfig, announce_topic, config_topic, dump
from edge.settings import EdgeSettings
from edge.worker import run_worker
from tests.edge.synthetic import CarDetector, car_frame, write_clip

SITE = """
site: {{id: push, name: Push, timezone: UTC, center: {{lat: 10.0, lon: 106.0}}, bin_seconds: 60}}
mqtt_prefix: {prefix}
cameras:
{cameras}
"""


def camera(cam: str, clip: Path, y: float = 0.5) -> dict[str, Any]:
    return {
        "id": cam,
        "name": cam,
        "location": {"lat": 10.0, "lon": 106.0},
        "group": "north",
        "source": {"kind": "file", "path": str(clip), "loop": True},
        "lines": [{"id": "L1", "points": [[0.0, y], [1.0, y]]}],
    }


class Watcher:
    """Everything published under the test's prefix, as parsed JSON, in arrival order."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic, json.loads(m.payload) if m.payload else {})
        )
        self.client.connect(host, port)
        self.client.subscribe(f"{prefix}/#", qos=1)
        self.client.loop_start()
        assert ready.wait(10)

    def wait(
        self, pred: Callable[[str, dict[str, Any]], bool], timeout: float = 20.0, since: int | None = None
    ) -> dict[str, Any]:
        """The next matching message; with ``since``, also those already seen from that index on."""
        if since is not None:
            for topic, msg in self.seen[since:]:
                if pred(topic, msg):
                    return msg
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topic, msg = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append((topic, msg))
            if pred(topic, msg):
                return msg
        raise AssertionError(f"nothing matched within {timeout} s; last: {self.seen[-5:]}")

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def watcher(mqtt_host_port: tuple[str, int], unique: str) -> Iterator[Watcher]:
    w = Watcher(*mqtt_host_port, f"cwpush{unique}")
    yield w
    w.publish(config_topic("push", "north", f"cwpush{unique}"), b"")  # clear the retained messages
    w.publish(announce_topic("push", "north", f"cwpush{unique}"), b"")
    w.close()


def _beat(cam: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda topic, msg: topic.endswith(f"/{cam}/heartbeat")


@pytest.mark.integration
def test_config_applies_without_restart_and_bad_config_is_rejected(
    tmp_path: Path, unique: str, watcher: Watcher, mqtt_host_port: tuple[str, int]
) -> None:
    prefix = f"cwpush{unique}"
    clip = write_clip(tmp_path / "road.avi", [car_frame(0.2 + 0.01 * i) for i in range(60)], fps=25.0)
    cams = [camera("cam-a", clip), camera("cam-b", clip)]
    text = SITE.format(prefix=prefix, cameras="\n".join(f"  - {json.dumps(c)}" for c in cams))
    site = parse_site(text, "site.yaml")
    host, port = mqtt_host_port
    settings = EdgeSettings.from_env(
        edge_id=f"e{unique}",
        outbox=str(tmp_path / "outbox"),
        metrics_port=0,
        env={
            "MQTT_URL": f"mqtt://{host}:{port}",
            "CITYWATCH_DELIVERY": "broker",
            "CITYWATCH_HEARTBEAT_S": "0.5",
            "CITYWATCH_CONFIG_PUSH": "on",
        },
    )
    stop_after = threading.Event()
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(
            run_worker(
                site, settings, None, 120, detector_factory=lambda c: CarDetector(), stop_event=stop_after
            )
        ),
        daemon=True,
    )
    worker.start()
    ann = announce_topic("push", "north", prefix)
    cfg = config_topic("push", "north", prefix)
    try:
        first = watcher.wait(lambda t, m: t == ann and m.get("cameras") == ["cam-a", "cam-b"])
        assert "config_version" not in first and first["host"]["cores"] >= 1
        before = watcher.wait(_beat("cam-a"))

        # v1: cam-b removed, cam-c added, cam-a the same.
        v1 = [camera("cam-a", clip), camera("cam-c", clip)]
        mark = len(watcher.seen)
        pushed_at = time.monotonic()
        watcher.publish(
            cfg, dump(EdgeConfig(site_id="push", group="north", version=1, cameras=v1, ts=_now()))
        )
        applied = watcher.wait(lambda t, m: t == ann and m.get("config_version") == 1)
        assert applied["cameras"] == ["cam-a", "cam-c"] and applied.get("config_error", "") == ""
        print(f"config v1 applied {time.monotonic() - pushed_at:.2f} s after the push")
        gone = watcher.wait(lambda t, m: t.endswith("/cam-b/status") and m["state"] == "offline", since=mark)
        assert "removed" in gone["reason"]
        new_beat = watcher.wait(lambda t, m: _beat("cam-c")(t, m) and m.get("config_version") == 1)
        assert new_beat["fps"] >= 0
        after = watcher.wait(lambda t, m: _beat("cam-a")(t, m) and m.get("config_version") == 1)
        # cam-a was never restarted: its uptime and frame counter carried on.
        assert after["uptime_s"] > before["uptime_s"]
        assert after["frames_analysed"] > before["frames_analysed"]

        # v2: an invalid line point. Rejected; every camera keeps running its v1 config.
        bad = [
            camera("cam-a", clip),
            {**camera("cam-c", clip), "lines": [{"id": "L1", "points": [[0, 0.5], [1.5, 0.5]]}]},
        ]
        watcher.publish(
            cfg, dump(EdgeConfig(site_id="push", group="north", version=2, cameras=bad, ts=_now()))
        )
        rejected = watcher.wait(lambda t, m: t == ann and m.get("rejected_version") == 2)
        assert rejected["config_version"] == 1
        assert "cameras[1].lines[0].points[1][0]" in rejected["config_error"]
        assert rejected["cameras"] == ["cam-a", "cam-c"]
        for cam in ("cam-a", "cam-c"):
            beat = watcher.wait(_beat(cam))
            assert beat["config_version"] == 1
        still = watcher.wait(_beat("cam-a"))
        assert still["uptime_s"] > after["uptime_s"]

        # v3: cam-c's line moves: only cam-c restarts.
        v3 = [camera("cam-a", clip), camera("cam-c", clip, y=0.6)]
        watcher.publish(
            cfg, dump(EdgeConfig(site_id="push", group="north", version=3, cameras=v3, ts=_now()))
        )
        watcher.wait(lambda t, m: t == ann and m.get("config_version") == 3 and not m.get("config_error"))
        restarted = watcher.wait(lambda t, m: _beat("cam-c")(t, m) and m.get("config_version") == 3)
        steady = watcher.wait(lambda t, m: _beat("cam-a")(t, m) and m.get("config_version") == 3)
        assert restarted["uptime_s"] < steady["uptime_s"]
        assert steady["uptime_s"] > still["uptime_s"]

        # v4/v5: a model rollout pinned by checksum. A mismatch is refused, nothing switches; the
        # right checksum switches the group's cameras to the new model.
        model = tmp_path / "model-v2.onnx"
        model.write_bytes(b"not really a model, but bytes with a checksum")
        good_sha = hashlib.sha256(model.read_bytes()).hexdigest()
        rollout = [{**camera(c, clip), "detector": {"model": str(model)}} for c in ("cam-a", "cam-c")]
        for version, sha in ((4, "0" * 64), (5, good_sha)):
            msg = EdgeConfig(
                site_id="push",
                group="north",
                version=version,
                cameras=rollout,
                models={str(model): sha},
                ts=_now(),
            )
            watcher.publish(cfg, dump(msg))
        refused = watcher.wait(lambda t, m: t == ann and m.get("rejected_version") == 4)
        assert "checksum mismatch" in refused["config_error"] and refused["config_version"] == 3
        switched = watcher.wait(lambda t, m: t == ann and m.get("config_version") == 5)
        assert {"name": str(model), "sha256": good_sha} in switched["models"]
        assert not switched.get("config_error")
    finally:
        stop_after.set()
        worker.join(30)
    assert result == [0]


def _now() -> datetime:
    return datetime.now(UTC)
