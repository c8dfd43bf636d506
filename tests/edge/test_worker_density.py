"""Eight cameras start together in one worker with the real model: one model copy, nobody deadlocks,
every camera is analysed, and SIGTERM stops the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import MODEL_PATH, ROOT, VIDEOS, need_shared
from tests.mosquitto import free_port

pytestmark = [pytest.mark.integration, pytest.mark.model]

CLIPS = ["nl-motorway-overpass.mp4", "us-arterial-dusk-overhead.mp4", "vn-hcmc-motorbikes-wrongway.mp4"]


def _per_camera(port: int, name: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('camera="', 1)[1].split('"', 1)[0]] = float(value)
    return out


def test_eight_cameras_start_at_once_and_stop_on_sigterm(tmp_path: Path, unique: str) -> None:
    model = need_shared(MODEL_PATH)
    clips = [need_shared(VIDEOS / c) for c in CLIPS]
    cams = "".join(
        f"""
  - id: cam-{i}
    name: Cam {i}
    location: {{lat: 10.0, lon: 106.0}}
    source: {{kind: file, path: "{clips[i % len(clips)]}", loop: true}}
    detector: {{model: "{model}"}}
    lines: [{{id: L1, points: [[0.0, 0.6], [1.0, 0.6]]}}]"""
        for i in range(8)
    )
    site = tmp_path / "site.yaml"
    site.write_text(
        f"""
site: {{id: dens, name: Dens, timezone: UTC, center: {{lat: 10.0, lon: 106.0}}, bin_seconds: 60}}
mqtt_prefix: cwtest{unique}
cameras:{cams}
""",
        encoding="utf-8",
    )
    port = free_port()
    env = dict(os.environ, CITYWATCH_DELIVERY="broker", CITYWATCH_HEARTBEAT_S="1")
    log_path = tmp_path / "edge.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citywatch.cli", "edge", "run", "--site", str(site), "--edge-id",
             f"e{unique}", "--outbox", str(tmp_path / "outbox"), "--metrics-port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            analysed: dict[str, float] = {}
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    analysed = _per_camera(port, "citywatch_edge_frames_detected_total")
                except OSError:
                    analysed = {}
                if len(analysed) == 8 and min(analysed.values()) >= 3:
                    break
                time.sleep(0.5)
            text = log_path.read_text(errors="replace")
            assert len(analysed) == 8 and min(analysed.values()) >= 3, (analysed, text[-3000:])
            assert "serving 8 camera(s) with 1 model(s)" in text
            assert set(_per_camera(port, "citywatch_edge_detect_queue_ms")) == set(analysed)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]
