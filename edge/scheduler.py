"""One detector for all cameras of a worker: a scheduler thread batches their frames fairly.

Each camera has at most one frame waiting (a newer frame replaces an older one that was not yet taken:
stale frames are not worth detecting). The scheduler thread takes waiting frames in round-robin order,
starting after the camera it served last, up to ``max_batch`` frames with the same detector settings,
runs them through the model in one call and hands each camera its boxes. A camera that stops sending
(a dead stream) is simply never waiting; a camera that sends as fast as it can gets one slot per round
like every other: nobody starves, and the scheduler never waits for a particular camera.

Cameras with an object approaching a counting line are marked *urgent* (:meth:`set_urgent`) and go
first, round-robin among themselves: that is where another frame changes a count. A frame that has
waited ``max_wait_s`` becomes urgent too, so no camera waits longer than that because others are busy.

The batch goes to the backend as one call: on CUDA that is one batched tensor; a static batch-1 CPU
model (the OpenVINO INT8 default) runs it image by image, so batching there only saves the hand-over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from citywatch.site import DetectorSettings
from edge.detections import BoxArray
from edge.errors import EdgeError

log = logging.getLogger(__name__)

#: The model call: images (and their common settings) -> raw boxes per image.
Backend = Callable[[Sequence[np.ndarray[Any, Any]], DetectorSettings], list[BoxArray]]


class SchedulerStoppedError(EdgeError):
    """The scheduler stopped while a frame was waiting for its detections."""


@dataclass(slots=True)
class _Request:
    camera_id: str
    image: np.ndarray[Any, Any]
    settings: DetectorSettings
    submitted: float
    done: threading.Event = field(default_factory=threading.Event)
    boxes: BoxArray | None = None
    error: BaseException | None = None
    replaced: bool = False


@dataclass(slots=True)
class CameraQueueStats:
    """Per camera: frames detected through the scheduler and the time they waited for the model."""

    detected: int = 0
    replaced: int = 0
    wait_s_sum: float = 0.0
    last_wait_ms: float = 0.0

    @property
    def mean_wait_ms(self) -> float:
        return self.wait_s_sum / self.detected * 1000 if self.detected else 0.0


class DetectScheduler(threading.Thread):
    """Serves detection requests of many cameras with one backend (see the module docstring)."""

    def __init__(
        self, backend: Backend, max_batch: int = 4, name: str = "detect-scheduler", max_wait_s: float = 0.5
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.backend = backend
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max_wait_s
        self._urgent: set[str] = set()
        self._cond = threading.Condition()
        self._order: list[str] = []  # registration order: the round-robin ring
        self._pending: dict[str, _Request] = {}
        self._next = 0  # ring index of the camera served first in the next round
        self._stopped = False
        self.stats: dict[str, CameraQueueStats] = {}
        self.batches = 0
        self.busy_s = 0.0

    def register(self, camera_id: str) -> None:
        with self._cond:
            if camera_id not in self.stats:
                self._order.append(camera_id)
                self.stats[camera_id] = CameraQueueStats()

    def set_urgent(self, camera_id: str, urgent: bool) -> None:
        """Mark a camera whose next frames matter more (an object is about to cross a line)."""
        with self._cond:
            if urgent:
                self._urgent.add(camera_id)
            else:
                self._urgent.discard(camera_id)

    # -- camera side ----------------------------------------------------------------------------------
    def detect(
        self,
        camera_id: str,
        image: np.ndarray[Any, Any],
        settings: DetectorSettings,
        stop: threading.Event | None = None,
    ) -> BoxArray:
        """Boxes for ``image``; blocks until served. Raises :class:`SchedulerStoppedError` on shutdown."""
        req = self.submit(camera_id, image, settings)
        while not req.done.wait(0.5):
            if (stop is not None and stop.is_set()) or self._stopped:
                self._withdraw(req)
                raise SchedulerStoppedError(f"camera {camera_id}: stopped while waiting for detection")
        if req.error is not None:
            raise req.error
        if req.boxes is None:
            raise SchedulerStoppedError(f"camera {camera_id}: request replaced or withdrawn")
        return req.boxes

    def submit(self, camera_id: str, image: np.ndarray[Any, Any], settings: DetectorSettings) -> _Request:
        req = _Request(camera_id, image, settings, time.monotonic())
        with self._cond:
            if self._stopped:
                req.error = SchedulerStoppedError("scheduler stopped")
                req.done.set()
                return req
            if camera_id not in self.stats:
                self._order.append(camera_id)
                self.stats[camera_id] = CameraQueueStats()
            old = self._pending.get(camera_id)
            if old is not None:  # a newer frame of the same camera replaces the waiting one
                old.replaced = True
                old.done.set()
                self.stats[camera_id].replaced += 1
            self._pending[camera_id] = req
            self._cond.notify()
        return req

    def _withdraw(self, req: _Request) -> None:
        with self._cond:
            if self._pending.get(req.camera_id) is req:
                del self._pending[req.camera_id]

    # -- scheduler side -------------------------------------------------------------------------------
    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            for req in self._pending.values():
                req.error = SchedulerStoppedError("scheduler stopped")
                req.done.set()
            self._pending.clear()
            self._cond.notify_all()

    def take_batch(self) -> list[_Request]:
        """The next round-robin batch (waits for at least one request); empty once stopped."""
        with self._cond:
            while not self._pending and not self._stopped:
                self._cond.wait(0.5)
            if self._stopped:
                return []
            batch: list[_Request] = []
            n = len(self._order)
            now = time.monotonic()
            ring = [(self._next + k) % n for k in range(n)]
            waiting = [i for i in ring if self._order[i] in self._pending]

            def later(i: int) -> bool:
                req = self._pending[self._order[i]]
                return req.camera_id not in self._urgent and now - req.submitted < self.max_wait_s

            first = -1
            for i in sorted(waiting, key=later):  # stable: urgent first, each group in ring order
                req = self._pending[self._order[i]]
                if batch and req.settings != batch[0].settings:
                    continue  # another model setting: its own batch, next round
                batch.append(req)
                del self._pending[req.camera_id]
                if first < 0:
                    first = i
                if len(batch) >= self.max_batch:
                    break
            # The next round starts after the first camera served now: every waiting camera moves up.
            self._next = (first + 1) % n
            return batch

    def run(self) -> None:
        while True:
            batch = self.take_batch()
            if not batch:
                return
            t0 = time.monotonic()
            try:
                results = self.backend([r.image for r in batch], batch[0].settings)
                if len(results) != len(batch):
                    raise EdgeError(f"detector returned {len(results)} results for {len(batch)} images")
            except Exception as exc:  # one failing batch fails its requests, not the scheduler
                log.exception("detection of a batch of %d frame(s) failed", len(batch))
                for r in batch:
                    r.error = exc
                    r.done.set()
                continue
            t1 = time.monotonic()
            self.batches += 1
            self.busy_s += t1 - t0
            for r, boxes in zip(batch, results, strict=True):
                st = self.stats[r.camera_id]
                st.detected += 1
                wait = t0 - r.submitted
                st.wait_s_sum += wait
                st.last_wait_ms = wait * 1000
                r.boxes = boxes
                r.done.set()
