"""Capture: the latest-frame slot drops stale frames; a missing source is retried until it appears."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from citywatch.site import FileSource
from edge.capture import LiveCapture
from tests.conftest import VIDEOS, need_shared


def test_a_slow_consumer_gets_the_latest_frame_and_drops_counted(tmp_path: Path) -> None:
    clip = need_shared(VIDEOS / "lot-car-bicycle-overhead.mp4")
    cap = LiveCapture("c", FileSource(path=str(clip), loop=True, realtime=False))
    cap.start()
    try:
        first = cap.latest(timeout=10)
        assert first is not None
        time.sleep(0.5)  # the reader keeps going while nobody takes frames
        second = cap.latest(timeout=5)
        assert second is not None
        assert cap.dropped > 0
        assert cap.frames_read > cap.dropped
    finally:
        cap.stop()


def test_a_source_that_appears_later_is_picked_up(tmp_path: Path) -> None:
    clip = need_shared(VIDEOS / "lot-car-bicycle-overhead.mp4")
    target = tmp_path / "late.mp4"
    cap = LiveCapture("c", FileSource(path=str(target), loop=True), max_backoff_s=1.0)
    cap.start()
    try:
        assert cap.latest(timeout=1.5) is None
        assert not cap.connected
        assert "does not exist" in cap.last_error
        shutil.copy(clip, target)
        frame = cap.latest(timeout=10)
        assert frame is not None
        assert cap.connected
        assert cap.last_error == ""
    finally:
        cap.stop()


def test_a_looping_file_is_not_a_reconnect(tmp_path: Path) -> None:
    """A file starting over restarts the tracks but is no reconnect; the counter never goes below
    zero (it did, between the end of a loop and the reopen, and a heartbeat built then was invalid and
    ended the camera's thread)."""
    clip = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, dtype=np.uint8))
    writer.release()
    cap = LiveCapture("c", FileSource(path=str(clip), loop=True, realtime=False))
    cap.start()
    seen = []
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            seen.append(cap.reconnects)
            cap.latest(timeout=0.01)
        assert cap.frames_read > 30  # it looped many times
        assert cap.restarted.is_set()
    finally:
        cap.stop()
    assert min(seen) == 0 and max(seen) == 0


def test_a_file_is_read_from_its_first_frame_only_once_its_camera_is_ready(tmp_path: Path) -> None:
    from tests.edge.synthetic import car_frame, write_clip

    clip = write_clip(tmp_path / "clip.avi", [car_frame(None)] * 30)
    ready = threading.Event()
    cap = LiveCapture("c", FileSource(path=str(clip)), gate=ready)
    cap.start()
    try:
        time.sleep(0.6)  # the model would be loading now: the footage must not run past unseen
        assert cap.frames_read == 0
        assert cap.latest(timeout=0.1) is None
        ready.set()
        first = cap.latest(timeout=5)
        assert first is not None and first.index == 0
    finally:
        cap.stop()
