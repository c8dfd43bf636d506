"""The shared detector's scheduler: fair across cameras, never held by a slow or dead camera."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from citywatch.site import DetectorSettings
from edge.scheduler import DetectScheduler, SchedulerStoppedError

SETTINGS = DetectorSettings(model="fake.pt")


class Backend:
    """Records which camera's frame each call carried (the frame's first pixel is the camera number)."""

    def __init__(self, seconds: float = 0.005) -> None:
        self.seconds = seconds
        self.calls: list[list[int]] = []

    def __call__(self, images: Sequence[np.ndarray[Any, Any]], settings: DetectorSettings) -> list[Any]:
        time.sleep(self.seconds)
        self.calls.append([int(im[0, 0, 0]) for im in images])
        return [np.array([[0, 0, 1, 1, 0.9, int(im[0, 0, 0])]], dtype=np.float64) for im in images]


def frame(cam: int) -> np.ndarray[Any, Any]:
    return np.full((4, 4, 3), cam, dtype=np.uint8)


def greedy(sched: DetectScheduler, cam: int, stop: threading.Event, served: Counter[int]) -> None:
    while not stop.is_set():
        try:
            boxes = sched.detect(f"c{cam}", frame(cam), SETTINGS, stop)
        except SchedulerStoppedError:
            return
        assert int(boxes[0, 5]) == cam  # every camera gets its own frame's result
        served[cam] += 1


@pytest.mark.parametrize("max_batch", [1, 3], ids=["batch-1", "batch-3"])
def test_busy_cameras_are_served_in_turn(max_batch: int) -> None:
    backend = Backend()
    sched = DetectScheduler(backend, max_batch=max_batch)
    for cam in range(5):
        sched.register(f"c{cam}")
    sched.start()
    stop = threading.Event()
    served: Counter[int] = Counter()
    threads = [threading.Thread(target=greedy, args=(sched, c, stop, served)) for c in range(5)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop.set()
    sched.stop()
    for t in threads:
        t.join(5)
    counts = [served[c] for c in range(5)]
    assert min(counts) > 10, counts
    assert max(counts) - min(counts) <= 2, counts  # round robin: nobody gets ahead by more than a turn
    assert all(len(batch) == len(set(batch)) for batch in backend.calls)  # one frame per camera per batch


def test_a_dead_camera_does_not_hold_the_others() -> None:
    """Camera c9 is registered but never sends a frame; c0 is served at once every time."""
    sched = DetectScheduler(Backend(), max_batch=4)
    sched.register("c9")
    sched.register("c0")
    sched.start()
    try:
        t0 = time.monotonic()
        for _ in range(20):
            sched.detect("c0", frame(0), SETTINGS)
        assert time.monotonic() - t0 < 2.0
        assert sched.stats["c0"].detected == 20
        assert sched.stats["c9"].detected == 0
    finally:
        sched.stop()


def test_a_slow_camera_does_not_hold_the_others() -> None:
    """c1 takes a long time between frames (its tracker, its stream); c0's frames still flow."""
    sched = DetectScheduler(Backend(), max_batch=2)
    sched.start()
    stop = threading.Event()
    served: Counter[int] = Counter()

    def slow() -> None:
        while not stop.is_set():
            sched.detect("c1", frame(1), SETTINGS, stop)
            served[1] += 1
            stop.wait(0.5)

    threads = [threading.Thread(target=slow), threading.Thread(target=greedy, args=(sched, 0, stop, served))]
    for t in threads:
        t.start()
    time.sleep(1.2)
    stop.set()
    sched.stop()
    for t in threads:
        t.join(5)
    assert served[0] > 20 * served[1] > 0


def test_a_failing_batch_fails_its_cameras_only_and_the_scheduler_carries_on() -> None:
    calls = {"n": 0}

    def backend(images: Sequence[np.ndarray[Any, Any]], settings: DetectorSettings) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("inference failed")
        return [np.zeros((0, 6)) for _ in images]

    sched = DetectScheduler(backend, max_batch=1)
    sched.start()
    try:
        with pytest.raises(RuntimeError, match="inference failed"):
            sched.detect("c0", frame(0), SETTINGS)
        assert sched.detect("c0", frame(0), SETTINGS).shape == (0, 6)
    finally:
        sched.stop()


def test_stop_releases_a_camera_waiting_on_a_stuck_model() -> None:
    release = threading.Event()

    def stuck(images: Sequence[np.ndarray[Any, Any]], settings: DetectorSettings) -> list[Any]:
        release.wait(10)
        return [np.zeros((0, 6)) for _ in images]

    sched = DetectScheduler(stuck, max_batch=1)
    sched.start()
    stop = threading.Event()
    result: list[BaseException] = []

    def waiter() -> None:
        try:
            sched.detect("c0", frame(0), SETTINGS, stop)
        except SchedulerStoppedError as exc:
            result.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.2)
    stop.set()
    t.join(2)
    release.set()
    sched.stop()
    assert not t.is_alive() and result


def test_a_newer_frame_replaces_a_waiting_one() -> None:
    sched = DetectScheduler(Backend(), max_batch=1)  # not started: requests wait
    first = sched.submit("c0", frame(0), SETTINGS)
    second = sched.submit("c0", frame(0), SETTINGS)
    assert first.done.is_set() and first.replaced and not second.done.is_set()
    assert [r.camera_id for r in sched.take_batch()] == ["c0"]
    sched.stop()


def test_a_camera_with_an_object_near_a_line_goes_first() -> None:
    sched = DetectScheduler(Backend(), max_batch=1)  # not started: the test takes the batches
    for cam in range(3):
        sched.submit(f"c{cam}", frame(cam), SETTINGS)
    sched.set_urgent("c2", True)
    assert [r.camera_id for r in sched.take_batch()] == ["c2"]
    assert [r.camera_id for r in sched.take_batch()] == ["c0"]
    sched.stop()


def test_urgent_cameras_cannot_starve_the_others() -> None:
    """Two greedy urgent cameras; a plain one still gets a frame through every ``max_wait_s``."""
    sched = DetectScheduler(Backend(seconds=0.01), max_batch=1, max_wait_s=0.1)
    sched.set_urgent("c1", True)
    sched.set_urgent("c2", True)
    sched.start()
    stop = threading.Event()
    served: Counter[int] = Counter()
    threads = [threading.Thread(target=greedy, args=(sched, c, stop, served)) for c in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop.set()
    sched.stop()
    for t in threads:
        t.join(5)
    assert served[1] > served[0] and served[2] > served[0]
    assert served[0] >= 4, served  # about one frame per 0.1 s of waiting, not zero
