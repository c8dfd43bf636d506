"""Worker start and stop: a stuck camera cannot keep the worker running; motion gating spares the detector."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citywatch.site import parse_site
from edge.detections import Detections
from edge.metrics import render_metrics
from edge.outbox import Outbox
from edge.settings import EdgeSettings
from edge.worker import EXIT_STUCK, CameraRunner, run_worker
from tests.edge.synthetic import CarDetector, car_frame, site_yaml, write_clip


class StuckDetector:
    """Never returns from inference until released (a wedged native call)."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        self.release.wait(60)
        return Detections.empty()

    def reset(self) -> None:
        return


def test_a_camera_that_does_not_stop_is_named_and_the_worker_exits_with_an_error(
    tmp_path: Path, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    clip = write_clip(tmp_path / "road.avi", [car_frame(None)] * 50)
    site = parse_site(site_yaml(f"cwtest{unique}", {"cam-ok": clip, "cam-stuck": clip}), "site.yaml")
    settings = EdgeSettings(
        edge_id=f"e{unique}",
        outbox_dir=tmp_path / "outbox",
        metrics_port=0,
        confirm=False,
        shutdown_deadline_s=1.0,
    )
    release = threading.Event()
    caplog.set_level(logging.ERROR, logger="edge.worker")
    t0 = time.monotonic()
    try:
        code = run_worker(
            site,
            settings,
            None,
            duration=1.5,
            detector_factory=lambda cam: StuckDetector(release) if cam.id == "cam-stuck" else CarDetector(),
        )
        elapsed = time.monotonic() - t0
    finally:
        release.set()
    assert code == EXIT_STUCK
    assert "camera cam-stuck did not stop" in caplog.text
    assert "camera cam-ok did not stop" not in caplog.text
    assert elapsed < 15, elapsed  # not the 60 s the stuck call would take


def _run_camera(
    tmp_path: Path, unique: str, frames: list[np.ndarray[Any, Any]], extra: str = ""
) -> CameraRunner:
    clip = write_clip(tmp_path / "road.avi", frames, fps=25.0)
    site = parse_site(site_yaml(f"cwtest{unique}", {"cam": clip}, extra), "site.yaml")
    settings = EdgeSettings(edge_id=f"e{unique}", outbox_dir=tmp_path, metrics_port=0, confirm=False)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    stop = threading.Event()
    runner = CameraRunner(site, site.cameras[0], settings, outbox, stop, CarDetector())
    runner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and runner.capture.last_error != "end of file":
        time.sleep(0.1)
    time.sleep(0.3)
    stop.set()
    runner.join(10)
    runner.publisher.stop(drain_s=0.5)
    runner.metrics_text = render_metrics([runner], outbox, "e")  # type: ignore[attr-defined]
    outbox.close()
    return runner


def _drive() -> list[np.ndarray[Any, Any]]:
    """3 s of empty road, a car crossing the line at y = 0.5 in 1.4 s, 2 s of empty road again."""
    static = [car_frame(None)] * 75
    crossing = [car_frame(0.2 + 0.7 * i / 34) for i in range(35)]
    return static + crossing + [car_frame(None)] * 50


def test_motion_gating_skips_a_static_scene_and_still_counts_the_car(tmp_path: Path, unique: str) -> None:
    runner = _run_camera(tmp_path, unique, _drive())
    det = runner.detector
    assert isinstance(det, CarDetector)
    assert runner.stats.frames > 120  # nearly every frame of the clip was looked at
    assert runner.stats.skipped_motion > 60  # the empty road was not detected frame after frame
    assert det.calls == runner.stats.detected < runner.stats.frames / 2
    assert runner.pipeline.crossings_total == 1
    text = runner.metrics_text  # type: ignore[attr-defined]
    labels = '{edge="e",camera="cam"}'
    assert f"citywatch_edge_frames_skipped_motion_total{labels} {runner.stats.skipped_motion}" in text
    assert f"citywatch_edge_frames_detected_total{labels} {runner.stats.detected}" in text


def test_without_motion_gating_every_frame_is_detected(tmp_path: Path, unique: str) -> None:
    runner = _run_camera(tmp_path, unique, _drive(), "\n    analysis: {motion: {enabled: false}}")
    assert runner.stats.skipped_motion == 0
    assert runner.stats.detected == runner.stats.frames
    assert runner.pipeline.crossings_total == 1
