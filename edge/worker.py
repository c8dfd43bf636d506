"""``citywatch edge run``: serve the cameras of a site in one process.

Per camera: a capture thread (latest-frame slot), a processing thread (detect, track, analytics) and a
publisher thread (outbox -> MQTT). A camera whose source or model fails is reported and retried or left
down; the other cameras keep running.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from citywatch import __version__
from citywatch.site import Camera, FileSource, SiteConfig
from contract.messages import HealthFlag, HeartbeatMessage, StreamState
from edge.capture import LiveCapture, describe
from edge.detect import Detector, UltralyticsTracker
from edge.emit import Emitter
from edge.errors import EdgeError
from edge.metrics import MetricsServer
from edge.outbox import Outbox
from edge.pipeline import CameraPipeline
from edge.publisher import CameraPublisher
from edge.settings import EdgeSettings

log = logging.getLogger(__name__)


@dataclass
class CameraStats:
    frames: int = 0
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
    ) -> None:
        super().__init__(name=f"camera-{camera.id}", daemon=True)
        self.site = site
        self.camera = camera
        self.settings = settings
        self.outbox = outbox
        self.stop_event = stop
        self.detector = detector
        self.stats = CameraStats()
        self.emitter = Emitter(site.site.id, settings.edge_id, camera.id, site.mqtt_prefix, outbox)
        self.capture = LiveCapture(camera.id, camera.source)
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

    def run(self) -> None:
        self.publisher.start()
        self.capture.start()
        try:
            if self.detector is None:
                self.detector = UltralyticsTracker(self.camera.detector)
        except EdgeError as exc:
            self.stats.error = str(exc)
            log.error("camera %s: %s; this camera is down, the others keep running", self.camera.id, exc)
            self._publish_state(StreamState.OFFLINE, str(exc))
            self.capture.stop()
            return
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
                    dets = detector.track(frame.image)
                    window_infer += (time.perf_counter() - t0) * 1000
                    self.pipeline.process(frame.image, frame.captured_at, dets)
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
            except Exception:
                # A bug in one step (one frame, one message) must not end this camera for good.
                self.stats.step_errors += 1
                log.exception("camera %s: processing step failed; the camera carries on", self.camera.id)
                self.stop_event.wait(1.0)

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
            dropped_frames=self.capture.dropped,
            outbox_depth=self.outbox.depth(self.camera.id),
            uptime_s=round(time.monotonic() - self.started_at, 1),
            reconnects=self.capture.reconnects,
            health=sorted(health),
            version=__version__,
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

    def shutdown(self) -> None:
        self.join(timeout=15)
        final = self.emitter.status(datetime.now(UTC), state=StreamState.OFFLINE, reason="worker stopped")
        self.publisher.stop(final)


def run_worker(
    site: SiteConfig, settings: EdgeSettings, camera_ids: list[str] | None, duration: float | None = None
) -> int:
    """Run until SIGINT/SIGTERM (or ``duration`` seconds). Returns the process exit code."""
    wanted = camera_ids or [c.id for c in site.cameras]
    unknown = [c for c in wanted if c not in {cam.id for cam in site.cameras}]
    if unknown:
        log.error("cameras %s are not in the site config", unknown)
        return 2
    outbox = Outbox(
        settings.outbox_dir / f"{settings.edge_id}.sqlite3",
        settings.outbox_max_messages,
        settings.outbox_max_bytes,
    )
    stop = threading.Event()
    runners = []
    for cam_id in wanted:
        cam = site.camera(cam_id)
        if settings.model_override:
            cam = cam.model_copy(
                update={"detector": cam.detector.model_copy(update={"model": settings.model_override})}
            )
        if isinstance(cam.source, FileSource):
            log.info("camera %s: %s", cam.id, describe(cam.source))
        runners.append(CameraRunner(site, cam, settings, outbox, stop))

    def _signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _signal)
        signal.signal(signal.SIGTERM, _signal)
    metrics = MetricsServer(settings.metrics_host, settings.metrics_port, runners, outbox, settings.edge_id)
    metrics.start()
    for r in runners:
        r.start()
    log.info(
        "edge %s: serving %d camera(s); metrics on http://%s:%d/metrics",
        settings.edge_id,
        len(runners),
        settings.metrics_host,
        metrics.port,
    )
    stop.wait(duration)
    stop.set()
    for r in runners:
        r.shutdown()
    metrics.stop()
    outbox.close()
    return 0
