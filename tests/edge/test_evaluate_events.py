"""Event scoring: matching raised incidents to labelled events, and `citywatch eval --events` on a
real clip with the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.evaluate import LabelError
from edge.evaluate_events import Raised, load_events, score
from tests.conftest import MODEL_PATH, ROOT, VIDEOS, need_shared

FPS = 25.0
EVENTS = [
    {"type": "collision", "frames": [250, 300]},  # 10 s .. 12 s
    {"type": "person_down", "frames": [500, 1000]},  # 20 s .. 40 s
]


def _r(key: str, kind: str, start: float, end: float = 50.0) -> Raised:
    return Raised(key, kind, start, end, f"{kind} {key}")


@pytest.mark.parametrize(
    ("raised", "recall", "false_alarms", "tta"),
    [
        pytest.param(
            [_r("a", "collision", 11.0), _r("b", "person_down", 25.0)], 1.0, 0, [1.0, 5.0], id="both"
        ),
        pytest.param([_r("a", "collision", 7.0)], 0.0, 1, [], id="before-the-contact-is-no-match"),
        pytest.param([_r("a", "vehicle_fallen", 11.0)], 0.0, 1, [], id="wrong-type"),
        pytest.param([_r("a", "collision", 13.5)], 0.5, 0, [3.5], id="within-tolerance-after"),
        pytest.param([_r("a", "collision", 10.5), _r("b", "collision", 11.0)], 0.5, 0, [0.5], id="duplicate"),
        pytest.param([_r("a", "collision", 45.0)], 0.0, 1, [], id="long-after"),
    ],
)
def test_score(raised: list[Raised], recall: float, false_alarms: int, tta: list[float]) -> None:
    report = score(EVENTS, raised, FPS, tolerance_s=2.0)
    assert report["recall"] == recall
    assert report["false_alarms"] == false_alarms
    assert report["time_to_alert_s"] == tta
    assert len(report["matched"]) + len(report["missed"]) == len(EVENTS)


def test_no_events_every_incident_is_a_false_alarm() -> None:
    report = score([], [_r("a", "collision", 1.0)], FPS, 2.0)
    assert report["recall"] is None and report["precision"] == 0.0 and report["false_alarms"] == 1
    assert report["per_type"]["collision"]["false_alarms"] == 1


def test_bad_label_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"fps": 25, "events": [{"type": "collision", "frames": [9, 3]}]}))
    with pytest.raises(LabelError, match=r"events\[0\]"):
        load_events(bad)


@pytest.mark.model
def test_cli_eval_events_on_a_real_clip(tmp_path: Path) -> None:
    """A short real clip with no crash in it: the labelled collision is missed, nothing is raised."""
    video = need_shared(VIDEOS / "lot-car-bicycle-overhead.mp4")
    model = need_shared(MODEL_PATH)
    labels = tmp_path / "lot.json"
    labels.write_text(
        json.dumps({"fps": 12, "frames": 41, "events": [{"type": "collision", "frames": [10, 20]}]})
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "citywatch.cli",
            "--log-level",
            "WARNING",
            "eval",
            "--events",
            "--labels",
            str(labels),
            "--video",
            str(video),
            "--model",
            str(model),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["frames"] == 41 and report["events"] == 1
    assert report["recall"] == 0.0 and report["missed"] == [{"type": "collision", "frames": [10, 20]}]
    assert report["false_alarms"] == 0 and set(report["per_type"]) == {"collision"}
