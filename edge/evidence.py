"""Video evidence of critical incidents: a per-camera ring of recent frames and the clip writer.

Per analysed frame the recorder keeps (at most ``fps`` times a second) a JPEG of the frame, scaled to
``max_width``, with the boxes seen in it; that costs one small JPEG encode, never a video encode. On the
start of a critical incident it takes the ring's last ``before_s`` seconds, keeps adding frames for
``after_s`` seconds, and then hands the frames to one background thread that draws the involved boxes,
encodes a WebM (VP8, which every browser plays without plug-ins) and emits an
:class:`~contract.messages.EvidenceMessage` through the camera's emitter, so through the durable outbox
on its own topic: at-least-once, and counts never wait for it.
"""

from __future__ import annotations

import base64
import logging
import queue
import tempfile
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from citywatch.site_safety import EvidenceSettings
from contract.messages import EvidenceMessage
from edge.analytics.tracks import TrackState
from edge.emit import Emitter

log = logging.getLogger(__name__)

#: (track id, class, normalized xyxy) of one box in a stored frame
StoredBox = tuple[int, str, tuple[float, float, float, float]]
_INVOLVED = (0, 0, 255)
_OTHER = (200, 200, 200)


class EvidenceError(Exception):
    """A clip that cannot be encoded (no encoder, or too large even when scaled down)."""


@dataclass(frozen=True, slots=True)
class StoredFrame:
    t: float
    jpeg: bytes
    boxes: list[StoredBox]


@dataclass(slots=True)
class _Pending:
    incident_id: uuid.UUID
    track_ids: set[int]
    until: float
    frames: list[StoredFrame] = field(default_factory=list)


def _decode(jpeg: bytes) -> np.ndarray[Any, Any]:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EvidenceError("a stored frame does not decode")
    return img


def encode_webm(
    frames: list[StoredFrame], involved: set[int], fps: float, scale: float = 1.0
) -> tuple[bytes, int, int]:
    """Draw the boxes (involved ones red) and encode a VP8 WebM; returns its bytes and size."""
    if not frames:
        raise EvidenceError("no frames")
    h0, w0 = _decode(frames[0].jpeg).shape[:2]
    w, h = max(2, int(w0 * scale) // 2 * 2), max(2, int(h0 * scale) // 2 * 2)
    with tempfile.TemporaryDirectory(prefix="citywatch-clip-") as tmp:
        path = Path(tmp) / "clip.webm"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"VP80"), fps, (w, h))
        if not writer.isOpened():
            raise EvidenceError("this OpenCV build cannot write VP8 WebM")
        try:
            for fr in frames:
                img = _decode(fr.jpeg)
                if img.shape[1] != w or img.shape[0] != h:
                    img = cv2.resize(img, (w, h))
                for tid, cls, (x0, y0, x1, y1) in fr.boxes:
                    hit = tid in involved
                    p0, p1 = (int(x0 * w), int(y0 * h)), (int(x1 * w), int(y1 * h))
                    cv2.rectangle(img, p0, p1, _INVOLVED if hit else _OTHER, 2 if hit else 1)
                    if hit:
                        cv2.putText(img, f"{cls} #{tid}", (p0[0], max(10, p0[1] - 4)), 0, 0.4, _INVOLVED, 1)
                writer.write(img)
        finally:
            writer.release()
        return path.read_bytes(), w, h


class EvidenceRecorder:
    """One camera's frame ring and pending clips. ``frame`` per analysed frame, ``start`` on a critical
    incident's start, ``close`` when the camera stops (finishes pending clips and waits for them)."""

    def __init__(self, settings: EvidenceSettings, emitter: Emitter) -> None:
        self.settings = settings
        self.emitter = emitter
        self._ring: deque[StoredFrame] = deque()
        self._pending: list[_Pending] = []
        self._last = -1e18
        self._jobs: queue.Queue[_Pending | None] = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        self.clips_sent = 0
        self.clips_dropped = 0

    def frame(self, t: float, image: np.ndarray[Any, Any], visible: list[TrackState]) -> None:
        if not self.settings.enabled or t - self._last < 1.0 / self.settings.fps - 1e-6:
            return
        self._last = t
        h, w = image.shape[:2]
        scale = min(1.0, self.settings.max_width / w)
        small = cv2.resize(image, (int(w * scale), int(h * scale))) if scale < 1.0 else image
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            return
        stored = StoredFrame(t, buf.tobytes(), [(tr.track_id, tr.cls, tr.box) for tr in visible])
        self._ring.append(stored)
        while self._ring and t - self._ring[0].t > self.settings.before_s:
            self._ring.popleft()
        for p in self._pending:
            p.frames.append(stored)
        for p in [p for p in self._pending if t >= p.until]:
            self._pending.remove(p)
            self._submit(p)

    def start(self, incident_id: uuid.UUID, track_ids: set[int], t: float) -> None:
        """A critical incident started at ``t``: record its clip."""
        if not self.settings.enabled:
            return
        before = [f for f in self._ring if f.t >= t - self.settings.before_s]
        self._pending.append(_Pending(incident_id, set(track_ids), t + self.settings.after_s, before))

    def close(self) -> None:
        """Finish every pending clip with the frames it has and wait until all are emitted."""
        for p in self._pending:
            self._submit(p)
        self._pending.clear()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    # ----------------------------------------------------------------------------------------------
    def _submit(self, p: _Pending) -> None:
        if not p.frames:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="evidence", daemon=True)
            self._thread.start()
        try:
            self._jobs.put_nowait(p)
        except queue.Full:
            self.clips_dropped += 1
            log.warning(
                "camera %s: evidence queue full, clip of %s dropped", self.emitter.camera_id, p.incident_id
            )

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._emit(job)
            except Exception:  # one bad clip must not stop the thread
                self.clips_dropped += 1
                log.exception(
                    "camera %s: clip of incident %s failed", self.emitter.camera_id, job.incident_id
                )

    def _emit(self, p: _Pending) -> None:
        s = self.settings
        data = b""
        w = h = 0
        for scale in (1.0, 0.5):
            data, w, h = encode_webm(p.frames, p.track_ids, s.fps, scale)
            if len(data) <= s.max_bytes:
                break
        else:
            self.clips_dropped += 1
            log.warning(
                "camera %s: clip of %s is %d bytes even scaled down (cap %d), dropped",
                self.emitter.camera_id,
                p.incident_id,
                len(data),
                s.max_bytes,
            )
            return
        first, last = p.frames[0].t, p.frames[-1].t
        self.emitter.emit(
            EvidenceMessage,
            "evidence",
            datetime.fromtimestamp(last, UTC),
            incident_id=p.incident_id,
            width=w,
            height=h,
            frames=len(p.frames),
            clip_start=datetime.fromtimestamp(first, UTC),
            duration_s=max(len(p.frames) / s.fps, 1.0 / s.fps),
            data_b64=base64.b64encode(data).decode(),
        )
        self.clips_sent += 1
        log.info(
            "camera %s: clip of incident %s sent (%d bytes)", self.emitter.camera_id, p.incident_id, len(data)
        )
