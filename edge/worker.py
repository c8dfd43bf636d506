"""``citywatch edge run``: serve the cameras of a site in one process.

Per camera: a capture thread (latest-frame slot), a processing thread (motion gate, detect, track,
analytics) and a publisher thread (outbox -> MQTT). The detector is shared: each model is loaded once,
before any camera starts, and one scheduler thread per model batches the cameras' frames fairly
(edge/scheduler.py). A camera whose source or model fails is reported and retried or left down; the
other cameras keep running. On SIGINT/SIGTERM or ``--duration`` the worker stops within
``shutdown_deadline_s``; a camera that does not stop by then is named and the process exits with
:data:`EXIT_STUCK`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from types import FrameType
from typing import Any

from citywatch import __version__
from citywatch.site import Camera, FileSource, SiteConfig
from contract.messages import HealthFlag, HeartbeatMessage, StreamState
from edge.capture import LiveCapture, describe
from edge.detect import Detector
from edge.emit import Emitter
from edge.metrics import MetricsServer
from edge.motion import MotionGate, near_a_line
from edge.outbox import Outbox
from edge.pipeline import CameraPipeline
from edge.publisher import CameraPublisher
from edge.roi import lines_box, region_of_interest
from edge.scheduler import DetectScheduler, SchedulerStoppedError
from edge.settings import EdgeSettings
from edge.shared import DetectorFactory, SharedDetectors

log = logging.getLogger(__name__)

#: Exit status of a worker that had to abandon a camera thread that did not stop in time.
EXIT_STUCK = 3


@dataclass
class CameraStats:
    frames: int = 0  # frames analysed (detected, or judged static by the motion gate)
    detected: int = 0  # frames run through the detector
    skipped_motion: int = 0  # frames not detected because nothing moved
    infer_ms_sum: float = 0.0
    last_fps: float = 0.0
    last_infer_ms: float = 0.0
    step_errors: int = 0
    error: str = ""
    health: set[HealthFlag] = field(default_factory=set)


class CameraRunner(threading.Thread):
    """Processing thread of one camera."""

    def __init__(
        self,
        site: SiteConfig,
        camera: Camera,
        settings: EdgeSettings,
        outbox: Outbox,
        stop: threading.Event,
        detector: Detector | None = None,
        scheduler: DetectScheduler | None = None,
        error: str = "",
    ) -> None:
        super().__init__(name=f"camera-{camera.id}", daemon=True)
        self.site = site
        self.camera = camera
        self.settings = settings
        self.outbox = outbox
        self.stop_event = stop
        self.detector = detector
        self.scheduler = scheduler
        self.stats = CameraStats(error=error)
        self.emitter = Emitter(site.site.id, settings.edge_id, camera.id, site.mqtt_prefix, outbox)
        # A file is read from its first frame once this camera is ready (see run()), not while models load.
        self.ready = threading.Event()
        self.capture = LiveCapture(camera.id, camera.source, gate=self.ready)
        self.gate = MotionGate(camera.analysis.motion)
        self._line_points = [list(line.points) for line in camera.lines]
        self._gate_size: tuple[int, int] | None = None
        self.pipeline = CameraPipeline(camera, site.site.bin_seconds, self.emitter, camera.detector.max_fps)
        now = datetime.now(UTC)
        self.publisher = CameraPublisher(
            outbox,
            settings.mqtt,
            site.site.id,
            settings.edge_id,
            camera.id,
            site.mqtt_prefix,
            offline_status=self.emitter.status(now, state=StreamState.OFFLINE, reason="connection lost"),
            inflight=settings.inflight,
            confirm=settings.confirm,
        )
        self.started_at = time.monotonic()
        self._state: tuple[StreamState, frozenset[HealthFlag]] | None = None
        self.config_version: int | None = None  # of a pushed config (edge/camera_set.py)

    def run(self) -> None:
        self.publisher.start()
        self.capture.start()
        if self.detector is None:
            self.stats.error = self.stats.error or "no detector"
            log.error(
                "camera %s: %s; this camera is down, the others keep running",
                self.camera.id,
                self.stats.error,
            )
            self._publish_state(StreamState.OFFLINE, self.stats.error)
            self.capture.stop()
            return
        self.ready.set()
        try:
            self._loop(self.detector)
        finally:
            self.capture.stop()
            self.pipeline.close(datetime.now(UTC))

    def _loop(self, detector: Detector) -> None:
        max_fps = self.camera.detector.max_fps
        period = 1.0 / max_fps if max_fps else 0.0
        next_due = time.monotonic()
        next_beat = time.monotonic() + self.settings.heartbeat_s
        window_frames, window_start, window_infer = 0, time.monotonic(), 0.0
        while not self.stop_event.is_set():
            try:
                if period:
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        self.stop_event.wait(delay)
                    next_due = max(next_due + period, time.monotonic() - period)
                frame = self.capture.latest(timeout=1.0)
                now = datetime.now(UTC)
                if frame is None:
                    if not self.capture.connected:
                        self.pipeline.tick(now, {HealthFlag.STREAM_DOWN})
                        self._publish_state(StreamState.OFFLINE, self.capture.last_error or "no frames")
                else:
                    if self.capture.restarted.is_set():
                        self.capture.restarted.clear()
                        detector.reset()
                    t0 = time.perf_counter()
                    static = not self._should_detect(frame.image, frame.captured_at.timestamp())
                    if static and self.pipeline.skip(frame.image, frame.captured_at):
                        self.stats.skipped_motion += 1
                    else:
                        dets = detector.track(frame.image)
                        window_infer += (time.perf_counter() - t0) * 1000
                        self.pipeline.process(frame.image, frame.captured_at, dets)
                        self.stats.detected += 1
                    self.stats.frames += 1
                    window_frames += 1
                    health = self.pipeline.health
                    self._publish_state(StreamState.DEGRADED if health else StreamState.ONLINE, "", health)
                if time.monotonic() >= next_beat:
                    elapsed = max(time.monotonic() - window_start, 1e-6)
                    self.stats.last_fps = window_frames / elapsed
                    self.stats.last_infer_ms = window_infer / window_frames if window_frames else 0.0
                    next_beat = time.monotonic() + self.settings.heartbeat_s
                    window_frames, window_start, window_infer = 0, time.monotonic(), 0.0
                    self._heartbeat(now)
            except SchedulerStoppedError:
                return
            except Exception:
                # A bug in one step (one frame, one message) must not end this camera for good.
                self.stats.step_errors += 1
                log.exception("camera %s: processing step failed; the camera carries on", self.camera.id)
                self.stop_event.wait(1.0)

    def _should_detect(self, image: Any, t: float) -> bool:
        h, w = image.shape[:2]
        if self._gate_size != (w, h):  # the motion region follows the detection region
            self._gate_size = (w, h)
            self.gate.roi = region_of_interest(self.camera, w, h) or lines_box(self.camera)
        visible = self.pipeline.last_visible
        moving = any((tr.motion(1.0) or 0.0) > 0.02 for tr in visible)
        if self.scheduler is not None:
            self.scheduler.set_urgent(self.camera.id, near_a_line(self._line_points, visible))
        return self.gate.should_detect(image, t, moving)

    def _heartbeat(self, now: datetime) -> None:
        health = set(self.pipeline.health)
        if not self.capture.connected:
            health.add(HealthFlag.STREAM_DOWN)
        self.stats.health = health
        self.emitter.emit(
            HeartbeatMessage,
            "heartbeat",
            now,
            fps=round(self.stats.last_fps, 2),
            source_fps=round(self.capture.source_fps, 2),
            inference_ms=round(self.stats.last_infer_ms, 1),
            frames_analysed=self.stats.frames,
            frames_detected=self.stats.detected,
            frames_skipped_motion=self.stats.skipped_motion,
            queue_ms=round(self.queue_ms, 1),
            dropped_frames=self.capture.dropped,
            outbox_depth=self.outbox.depth(self.camera.id),
            uptime_s=round(time.monotonic() - self.started_at, 1),
            reconnects=self.capture.reconnects,
            health=sorted(health),
            version=__version__,
            config_version=self.config_version,
        )
        self.publisher.wake()

    def _publish_state(self, state: StreamState, reason: str, health: set[HealthFlag] | None = None) -> None:
        key = (state, frozenset(health or ()))
        if key == self._state:
            return
        self._state = key
        if state is StreamState.OFFLINE:
            log.warning("camera %s: offline (%s)", self.camera.id, reason)
        self.publisher.set_status(
            self.emitter.status(
                datetime.now(UTC), state=state, reason=reason[:200], health=sorted(health or ())
            )
        )

    @property
    def queue_ms(self) -> float:
        """Mean time this camera's frames waited for the shared detector (ms)."""
        if self.scheduler is None:
            return 0.0
        st = self.scheduler.stats.get(self.camera.id)
        return st.mean_wait_ms if st else 0.0


def _stop_all(runners: list[CameraRunner], deadline_s: float) -> list[str]:
    """Join camera threads and stop publishers, in parallel, until the deadline. Returns stuck cameras."""
    end = time.monotonic() + deadline_s
    for r in runners:
        r.join(timeout=max(0.0, end - time.monotonic()))
    stuck = [r for r in runners if r.is_alive()]
    frames = sys._current_frames()
    for r in stuck:
        where = "".join(traceback.format_stack(frames[r.ident])[-3:]) if r.ident in frames else "?"
        log.error(
            "camera %s did not stop within %.0f s of the stop request; abandoning it. It was at:\n%s",
            r.camera.id,
            deadline_s,
            where,
        )

    def _stop_publisher(r: CameraRunner) -> None:
        final = r.emitter.status(datetime.now(UTC), state=StreamState.OFFLINE, reason="worker stopped")
        r.publisher.stop(final, drain_s=max(0.5, min(5.0, end - time.monotonic())))

    stoppers = [threading.Thread(target=_stop_publisher, args=(r,), daemon=True) for r in runners]
    for t in stoppers:
        t.start()
    grace = max(end - time.monotonic(), 0.0) + 3.0  # the final status publish gets a moment past it
    for t in stoppers:
        t.join(timeout=max(0.0, time.monotonic() + grace - time.monotonic()))
    return [r.camera.id for r in stuck]


def run_worker(
    site: SiteConfig,
    settings: EdgeSettings,
    camera_ids: list[str] | None,
    duration: float | None = None,
    detector_factory: DetectorFactory | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (or ``duration`` seconds, or ``stop_event``). Returns the exit code.

    ``detector_factory`` replaces the model loading (tests); by default each distinct model is loaded
    once, warmed up and shared through a :class:`DetectScheduler`.
    """
    wanted = camera_ids or [c.id for c in site.cameras]
    unknown = [c for c in wanted if c not in {cam.id for cam in site.cameras}]
    if unknown:
        log.error("cameras %s are not in the site config", unknown)
        return 2
    stop = stop_event or threading.Event()
    signals = [0]

    def _signal(signum: int, frame: FrameType | None) -> None:
        signals[0] += 1
        if signals[0] > 1:  # asked twice: do not wait for anything any more
            log.error("signal %d again: exiting now", signum)
            logging.shutdown()
            os._exit(EXIT_STUCK)
        log.info("signal %d: stopping", signum)
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _signal)
    try:
        return _serve(site, settings, wanted, stop, duration, detector_factory)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(
    site: SiteConfig,
    settings: EdgeSettings,
    wanted: list[str],
    stop: threading.Event,
    duration: float | None,
    detector_factory: DetectorFactory | None,
) -> int:
    from edge.camera_set import CameraSet  # noqa: PLC0415 (it imports CameraRunner from here)

    started = time.monotonic()
    cameras = []
    for cam_id in wanted:
        cam = _prepared(site.camera(cam_id), settings)
        if isinstance(cam.source, FileSource):
            log.info("camera %s: %s", cam.id, describe(cam.source))
        cameras.append(cam)
    # Every model is loaded and warmed up here, one at a time, before any camera thread exists.
    shared = SharedDetectors(settings.max_batch, detector_factory)
    outbox = Outbox(
        settings.outbox_dir / f"{settings.edge_id}.sqlite3",
        settings.outbox_max_messages,
        settings.outbox_max_bytes,
    )
    camera_set = CameraSet(site, settings, outbox, shared, stop)
    runners = camera_set.runners  # the live list: cameras come and go with pushed configs
    for cam in cameras:
        if stop.is_set():
            break
        camera_set.add(camera_set.create(cam))
    shared.start()
    metrics = MetricsServer(settings.metrics_host, settings.metrics_port, runners, outbox, settings.edge_id)
    metrics.start()
    for r in runners:
        r.start()
    log.info(
        "edge %s: serving %d camera(s) with %d model(s); metrics on http://%s:%d/metrics",
        settings.edge_id,
        len(runners),
        shared.model_count,
        settings.metrics_host,
        metrics.port,
    )
    sync = _config_sync(site, settings, camera_set, wanted) if settings.config_push else None
    remaining = None if duration is None else max(0.0, duration - (time.monotonic() - started))
    stop.wait(remaining)
    stop.set()
    if sync is not None:
        sync.stop()
    camera_set.stop_all()
    shared.stop()
    stuck = _stop_all(runners, settings.shutdown_deadline_s)
    metrics.stop()
    if stuck:
        log.error("edge %s: cameras %s did not stop; exit status %d", settings.edge_id, stuck, EXIT_STUCK)
        return EXIT_STUCK
    outbox.close()
    return 0


def _prepared(cam: Camera, settings: EdgeSettings) -> Camera:
    if settings.model_override:
        return cam.model_copy(
            update={"detector": cam.detector.model_copy(update={"model": settings.model_override})}
        )
    return cam


def _config_sync(site: SiteConfig, settings: EdgeSettings, camera_set: Any, wanted: list[str]) -> Any:
    """Start applying pushed configs (edge/config_sync.py); CITYWATCH_CONFIG_PUSH=on."""
    from edge.config_sync import ConfigSync  # noqa: PLC0415

    sync = ConfigSync(site, settings, camera_set, wanted, prepare=partial(_prepared, settings=settings))
    sync.start()
    return sync
