"""The running cameras of one worker, changed at run time: add, change or remove one camera while the
others keep running (a pushed config, edge/config_sync.py).

Each camera has its own stop event, so stopping one touches nobody else; a changed camera is stopped
and started again with its new config (its outbox and sequence numbers carry on). A new model is loaded
on the caller's thread while the running cameras keep detecting with theirs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from citywatch.site import Camera, SiteConfig
from contract.messages import StreamState
from edge.outbox import Outbox
from edge.roi import region_of_interest
from edge.settings import EdgeSettings
from edge.shared import SharedDetectors
from edge.worker import CameraRunner

log = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


class CameraSet:
    """Owns the camera runners of a worker; ``runners`` is the live list the metrics server reads."""

    def __init__(
        self,
        site: SiteConfig,
        settings: EdgeSettings,
        outbox: Outbox,
        shared: SharedDetectors,
        stop: threading.Event,
        runners: list[CameraRunner] | None = None,
    ) -> None:
        self.site = site
        self.settings = settings
        self.outbox = outbox
        self.shared = shared
        self.stop = stop  # the worker's: set, every camera stops
        self.runners: list[CameraRunner] = [] if runners is None else runners
        self.config_version: int | None = None
        self._lock = threading.Lock()

    def create(self, cam: Camera) -> CameraRunner:
        """A runner for ``cam`` (its model loaded if new), not started."""
        own = threading.Event()
        detector, error = self.shared.detector_for(cam, own, roi=partial(region_of_interest, cam))
        runner = CameraRunner(
            self.site, cam, self.settings, self.outbox, own, detector, self.shared.scheduler_for(cam), error
        )
        runner.config_version = self.config_version
        return runner

    def add(self, runner: CameraRunner) -> None:
        with self._lock:
            self.runners.append(runner)

    def start_new_schedulers(self) -> None:
        self.shared.start_new()

    def stop_camera(self, camera_id: str, reason: str, deadline_s: float = 10.0) -> bool:
        """Stop one camera (publishes its final offline status); False if it did not stop in time."""
        with self._lock:
            runner = next((r for r in self.runners if r.camera.id == camera_id), None)
        if runner is None:
            return True
        runner.stop_event.set()
        runner.join(deadline_s)
        stopped = not runner.is_alive()
        if not stopped:
            log.error("camera %s did not stop within %.0f s; abandoning its thread", camera_id, deadline_s)
        final = runner.emitter.status(datetime.now(UTC), state=StreamState.OFFLINE, reason=reason)
        runner.publisher.stop(final, drain_s=2.0)
        with self._lock:
            self.runners.remove(runner)
        return stopped

    def apply(self, site: SiteConfig, wanted: list[Camera], version: int | None) -> ApplyResult:
        """Make the running cameras those of ``wanted``: only cameras that differ are touched."""
        result = ApplyResult()
        t0 = time.monotonic()
        self.site = site
        self.config_version = version
        current = {r.camera.id: r for r in list(self.runners)}
        wanted_ids = {c.id for c in wanted}
        for cam_id in current:
            if cam_id not in wanted_ids:
                self.stop_camera(cam_id, "camera removed by a pushed config")
                result.removed.append(cam_id)
        for cam in wanted:
            old = current.get(cam.id)
            if old is not None and old.camera == cam:
                old.config_version = version
                result.unchanged.append(cam.id)
                continue
            if old is not None:
                self.stop_camera(cam.id, "camera config changed")
                result.changed.append(cam.id)
            else:
                result.added.append(cam.id)
            if self.stop.is_set():  # the worker is stopping: start nothing new
                continue
            runner = self.create(cam)
            self.start_new_schedulers()
            self.add(runner)
            runner.start()
        log.info(
            "config %s applied in %.2f s: added %s, changed %s, removed %s, %d unchanged",
            version,
            time.monotonic() - t0,
            result.added or "-",
            result.changed or "-",
            result.removed or "-",
            len(result.unchanged),
        )
        return result

    def stop_all(self) -> None:
        """Called when the worker stops: every camera's own stop event is set."""
        for r in list(self.runners):
            r.stop_event.set()
