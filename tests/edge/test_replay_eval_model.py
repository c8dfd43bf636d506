"""The real model on real clips: `citywatch edge replay` raises the intrusion once with its evidence,
and `citywatch eval --json` scores counting against hand-made labels."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract import CountsMessage, IncidentEvent, IncidentMessage, IncidentType, parse_message, parse_topic
from tests.conftest import LABELS, MODEL_PATH, ROOT, VIDEOS, need_shared

pytestmark = pytest.mark.model


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citywatch.cli", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
        env=env,
    )


def test_replay_raises_the_hard_shoulder_intrusion_once_with_a_snapshot(tmp_path: Path) -> None:
    video = need_shared(VIDEOS / "fr-motorway-cctv-pedestrian-alarm.avi")
    model = need_shared(MODEL_PATH)
    out = tmp_path / "replay.json"
    done = _cli(
        "edge",
        "replay",
        str(video),
        "--site",
        str(ROOT / "config" / "quynhon.yaml"),
        "--camera",
        "cam-thi-nai-bridge",
        "--json",
        str(out),
        "--stride",
        "2",
        "--model",
        str(model),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(out.read_text())
    messages = [parse_message(json.dumps(m["payload"]), parse_topic(m["topic"])) for m in doc["messages"]]
    incidents = [m for m in messages if isinstance(m, IncidentMessage)]
    starts = [i for i in incidents if i.event is IncidentEvent.START]
    assert len(starts) == 1, [(i.event, i.type, i.track_ids) for i in incidents]
    start = starts[0]
    assert start.type is IncidentType.INTRUSION and start.zone_id == "hard-shoulder"
    assert start.track_ids and set(start.classes) <= {"person", "bicycle"}
    assert start.snapshot is not None
    img = cv2.imdecode(np.frombuffer(base64.b64decode(start.snapshot.data_b64), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == start.snapshot.width
    # The clip's cyclist rides up the right hard shoulder: the incident is on the right of the image.
    assert start.image_position is not None and start.image_position.x > 0.7
    ends = [i for i in incidents if i.event is IncidentEvent.END]
    assert [e.incident_id for e in ends] == [start.incident_id]
    counts = [m for m in messages if isinstance(m, CountsMessage)]
    assert sum(c.count for m in counts for c in m.lines if c.cls == "car") >= 15  # 21 cars cross L1
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))


def test_eval_json_scores_a_labelled_clip(tmp_path: Path) -> None:
    labels = need_shared(LABELS / "nl-motorway-overpass.json")
    video = need_shared(VIDEOS / "nl-motorway-overpass.mp4")
    model = need_shared(MODEL_PATH)
    # A fresh Ultralytics config folder: its first-run banner must not reach stdout.
    env = dict(os.environ, YOLO_CONFIG_DIR=str(tmp_path / "fresh-ultralytics"))
    done = _cli(
        "eval", "--labels", str(labels), "--video", str(video), "--model", str(model), "--json", env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Ultralytics Settings" in done.stderr  # the banner was printed, on stderr
    report = json.loads(done.stdout)  # stdout holds the JSON object and nothing else
    assert {"overall_accuracy", "cells"} <= set(report)
    cell = next(
        c for c in report["cells"] if (c["line"], c["direction"], c["class"]) == ("L1", "down", "car")
    )
    assert cell["truth"] == 11
    assert abs(cell["counted"] - cell["truth"]) <= 1
    assert report["overall_accuracy"] >= 0.9


def test_eval_rejects_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    labels = need_shared(LABELS / "nl-motorway-overpass.json")
    model = need_shared(MODEL_PATH)
    bogus = tmp_path / "clip.mp4"
    bogus.write_text("not a video", encoding="utf-8")
    done = _cli("eval", "--labels", str(labels), "--video", str(bogus), "--model", str(model))
    assert done.returncode == 1
    assert "error:" in done.stderr
