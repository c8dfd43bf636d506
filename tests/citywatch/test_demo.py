"""`citywatch demo` as a new user runs it: nothing configured (its own broker and embedded PostgreSQL),
one camera of the Quy Nhơn site on the shared clip with the real model. The printed demo users log in,
the camera reports live counts, the real detector's intrusion reaches the incident queue with its alert
on the live channel, the planner is kept away from live data, and SIGTERM stops everything cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL_PATH, ROOT, VIDEOS, need_shared
from tests.mosquitto import free_port

pytestmark = [pytest.mark.integration, pytest.mark.model]
CAMERA = "cam-thi-nai-bridge"  # the fr clip: a pedestrian on the hard shoulder within its 30 s


def _poll(fn: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    return None


def test_demo_runs_the_whole_system(tmp_path: Path) -> None:
    need_shared(VIDEOS / "fr-motorway-cctv-pedestrian-alarm.avi")
    need_shared(MODEL_PATH)
    env = {k: v for k, v in os.environ.items() if k not in {"MQTT_URL", "DATABASE_URL"}}
    env["CITYWATCH_DEMO_DIR"] = str(tmp_path / "demo")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "citywatch.cli", "demo", "--camera", CAMERA, "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert banner.wait(240), "".join(lines[-60:])
        users = dict(
            re.findall(r"^\s+(admin|operator|police|planner)\s+password (\S+)$", "".join(lines), re.M)
        )
        assert set(users) == {"admin", "operator", "police", "planner"}, "".join(lines[-30:])
        base = f"http://127.0.0.1:{port}"
        tokens = {}
        for name, password in users.items():
            r = httpx.post(f"{base}/api/v1/auth/token", data={"username": name, "password": password})
            assert r.status_code == 200, r.text
            tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}

        def counted() -> Any:
            cams = httpx.get(f"{base}/api/v1/live/cameras", headers=tokens["operator"]).json()["cameras"]
            return [
                c for c in cams if c["camera_id"] == CAMERA and c["state"] == "online" and c["last_counts"]
            ]

        assert _poll(counted, 150), "no live counts from the demo camera\n" + "".join(lines[-40:])

        def intrusion() -> Any:
            r = httpx.get(f"{base}/api/v1/incidents", params={"type": "intrusion"}, headers=tokens["police"])
            return r.json()["incidents"]

        found = _poll(intrusion, 150)
        assert found, "the real detector's intrusion did not reach the queue\n" + "".join(lines[-40:])
        detail = httpx.get(
            f"{base}/api/v1/incidents/{found[0]['incident_id']}", headers=tokens["police"]
        ).json()
        assert detail["alerts"] and detail["alerts"][0]["rule_id"] == "security"
        assert any(d["channel"] == "live" and d["ok"] for d in detail["alerts"][0]["deliveries"])
        assert detail["snapshot_url"] is not None
        snap = httpx.get(base + detail["snapshot_url"], headers=tokens["police"])
        assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
        assert httpx.get(f"{base}/api/v1/live/cameras", headers=tokens["planner"]).status_code == 403
        frame = httpx.get(f"{base}/api/v1/cameras/{CAMERA}/frame.jpg", headers=tokens["operator"], timeout=10)
        assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, "".join(lines[-40:])
