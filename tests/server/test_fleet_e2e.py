"""The fleet end to end: the real app (ingest, fleet bridge), the real broker and database, and a real
edge worker with config push on. An admin adds a camera through the API; the edge starts it without
stopping the other, its counts reach the database, and the fleet view shows the applied version. A bad
config that reaches the edge is rejected, every camera keeps running, and the fleet view says so."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.site import parse_site
from contract.fleet import EdgeConfig, announce_topic, config_topic, dump
from edge.settings import EdgeSettings
from edge.worker import run_worker
from server.app import create_app
from server.db.migrate import migrate
from server.settings import Settings
from tests.edge.synthetic import CarDetector, car_frame, write_clip
from tests.server.helpers import login

pytestmark = pytest.mark.integration


def _camera(cam: str, clip: Path) -> dict[str, Any]:
    return {
        "id": cam,
        "name": f"Camera {cam}",
        "location": {"lat": 10.0, "lon": 106.0},
        "group": "north",
        "source": {"kind": "file", "path": str(clip), "loop": True},
        "lines": [{"id": "L1", "points": [[0.0, 0.5], [1.0, 0.5]], "directions": {"positive": "down"}}],
    }


def _until(what: str, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def _clear(host: str, port: int, topics: list[str]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(host, port)
    c.loop_start()
    for t in topics:
        c.publish(t, b"", qos=1, retain=True).wait_for_publish(10)
    c.loop_stop()
    c.disconnect()


def test_camera_added_in_the_api_counts_and_bad_config_is_shown(
    fresh_db: str, tmp_path: Path, unique: str, mqtt_host_port: tuple[str, int]
) -> None:
    host, port = mqtt_host_port
    prefix = f"cwfleet{unique}"
    # A car drives down through the line at y = 0.5 once per 1.2 s loop of the clip.
    clip = write_clip(tmp_path / "road.avi", [car_frame(0.1 + 0.03 * i) for i in range(30)], fps=25.0)
    text = (
        f"site: {{id: fleet, name: Fleet, timezone: UTC, center: {{lat: 10, lon: 106}}, bin_seconds: 2}}\n"
        f"mqtt_prefix: {prefix}\ncameras:\n  - {json.dumps(_camera('cam-a', clip))}\n"
    )
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    site = parse_site(text, str(path))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, "UTC", "off")
    settings = Settings.from_env(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://{host}:{port}",
            "MQTT_CLIENT_ID": f"srv-{unique}",
            "MQTT_SESSION_EXPIRY_S": "60",
            "CITYWATCH_SITE": str(path),
            "CITYWATCH_ALERTING": "off",
        }
    )
    edge_settings = EdgeSettings.from_env(
        edge_id=f"edge-{unique}",
        outbox=str(tmp_path / "outbox"),
        metrics_port=0,
        env={
            "MQTT_URL": f"mqtt://{host}:{port}",
            "CITYWATCH_DELIVERY": "broker",
            "CITYWATCH_HEARTBEAT_S": "0.5",
            "CITYWATCH_CONFIG_PUSH": "on",
        },
    )
    stop = threading.Event()
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(
            run_worker(site, edge_settings, None, 180, lambda c: CarDetector(), stop_event=stop)
        ),
        daemon=True,
    )
    try:
        with TestClient(create_app(settings, site)) as client:
            login(client, fresh_db, "admin")
            worker.start()

            def fleet() -> dict[str, Any]:
                r = client.get("/api/v1/fleet")
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                return body

            def edge_at(version: int) -> dict[str, Any] | None:
                body = fleet()
                edges = [e for e in body["edges"] if e["group"] == "north"]
                if edges and edges[0]["config_version"] == version == body["desired"]["north"]:
                    found: dict[str, Any] = edges[0]
                    return found
                return None

            def last_seen(cam: str) -> str:
                return str(next(c for c in fleet()["cameras"] if c["id"] == cam)["last_seen"])

            # The server pushed the seeded config at start; the edge applied it (no camera changed).
            edge = _until("edge on the seeded config", lambda: edge_at(fleet()["desired"]["north"]))
            assert edge["cameras"] == ["cam-a"] and edge["alerts"] == []
            assert edge["host"]["cores"] >= 1 and edge["models"]

            # An invalid camera is refused next to its field; nothing is pushed.
            bad = {**_camera("cam-b", clip), "lines": [{"id": "L1", "points": [[0, 0.5], [1.5, 0.5]]}]}
            r = client.put("/api/v1/fleet/cameras/cam-b", json=bad)
            assert r.status_code == 422
            assert r.json()["detail"][0]["field"] == "lines[0].points[1][0]"

            before = fleet()["desired"]["north"]
            t0 = time.monotonic()
            r = client.put("/api/v1/fleet/cameras/cam-b", json=_camera("cam-b", clip))
            assert r.status_code == 200 and r.json()["created"] is True, r.text
            edge = _until("edge runs cam-b", lambda: edge_at(before + 1))
            print(f"camera added through the API running on the edge {time.monotonic() - t0:.2f} s later")
            assert edge["cameras"] == ["cam-a", "cam-b"]

            def counted(cam: str) -> int:
                with psycopg.connect(fresh_db) as conn:
                    row = conn.execute(
                        "SELECT coalesce(sum(count), 0) FROM counts WHERE camera_id = %s", (cam,)
                    ).fetchone()
                return int(row[0]) if row else 0

            assert _until("counts of cam-b in the database", lambda: counted("cam-b"), 40) > 0
            cam_b = _until(
                "cam-b's heartbeat on the fleet view",
                lambda: next(
                    (
                        c
                        for c in fleet()["cameras"]
                        if c["id"] == "cam-b" and c["config_version"] == before + 1
                    ),
                    None,
                ),
                10,
            )
            assert cam_b["fps"] is not None and cam_b["outbox_depth"] is not None and cam_b["alerts"] == []

            # A config the edge rejects (pushed past the API's validation): shown, every camera runs.
            version = before + 50
            wrong = [_camera("cam-a", clip), {**_camera("cam-b", clip), "rules": [{"id": "r", "type": "x"}]}]
            _clear_and_push(host, port, config_topic("fleet", "north", prefix), version, wrong)
            shown = _until(
                "rejection on the fleet view",
                lambda: next(
                    (e for e in fleet()["edges"] if e["rejected_version"] == version and e["alerts"]), None
                ),
                10,
            )
            assert "rejected" in shown["alerts"][0] and shown["cameras"] == ["cam-a", "cam-b"]
            assert shown["config_version"] == before + 1
            # Both cameras still run: their heartbeats keep arriving after the rejection.
            seen = {cam: last_seen(cam) for cam in ("cam-a", "cam-b")}
            for cam, at in seen.items():
                _until(f"{cam} still running", partial(lambda c, t: last_seen(c) > t, cam, at), 10)

            # Model rollout by checksum: a mismatch is refused (shown), the right one switches, and a
            # rollback returns to the previous model.
            models = {}
            for name in ("a", "b"):
                f = tmp_path / f"model-{name}.onnx"
                f.write_bytes(f"model {name} bytes".encode())
                models[name] = (str(f), hashlib.sha256(f.read_bytes()).hexdigest())

            def rollout(model: str, sha: str) -> int:
                r = client.put("/api/v1/fleet/groups/north/model", json={"model": model, "sha256": sha})
                assert r.status_code == 200, r.text
                return int(fleet()["desired"]["north"])

            def running(sha: str, version: int) -> dict[str, Any] | None:
                edge = edge_at(version)
                return edge if edge and sha in {m.get("sha256") for m in edge["models"]} else None

            mismatch = rollout(models["a"][0], "f" * 64)
            refused = _until(
                "checksum mismatch refused",
                lambda: next((e for e in fleet()["edges"] if e["rejected_version"] == mismatch), None),
                10,
            )
            assert any("checksum mismatch" in a for a in refused["alerts"])
            _until("model a running", partial(running, models["a"][1], rollout(*models["a"])), 15)
            _until("model b running", partial(running, models["b"][1], rollout(*models["b"])), 15)
            r = client.post("/api/v1/fleet/groups/north/model/rollback")
            assert r.status_code == 200 and r.json()["sha256"] == models["a"][1], r.text
            _until("rolled back to a", partial(running, models["a"][1], fleet()["desired"]["north"]), 15)
    finally:
        stop.set()
        worker.join(30)
        _clear(
            host,
            port,
            [config_topic("fleet", "north", prefix), announce_topic("fleet", "north", prefix)],
        )
    assert codes == [0]


def _clear_and_push(host: str, port: int, topic: str, version: int, cameras: list[dict[str, Any]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(host, port)
    c.loop_start()
    msg = EdgeConfig(site_id="fleet", group="north", version=version, cameras=cameras, ts=datetime.now(UTC))
    c.publish(topic, dump(msg), qos=1, retain=True).wait_for_publish(10)
    c.loop_stop()
    c.disconnect()
