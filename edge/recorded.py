"""Tracked detections recorded once and replayed many times.

Running YOLO over a clip is the slow part of an evaluation; the incident rules after it are cheap. A
recording holds, per analysed frame, the tracker's output (boxes, scores, classes, track ids), so rule
changes can be scored on every labelled clip in seconds. The recording is tied to the model, stride
and clip it was made from: :func:`recording_key` names it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.detections import Detections


def recording_key(video: Path, model: str, stride: int, conf: float, imgsz: int) -> str:
    """A file name for the recording of ``video`` under these detector settings."""
    stat = video.stat()
    digest = hashlib.sha256(
        json.dumps([video.name, stat.st_size, model, stride, conf, imgsz]).encode()
    ).hexdigest()[:12]
    return f"{video.stem}-{digest}.npz"


class RecordingDetector:
    """Wraps a real detector and keeps every frame's tracked detections for :func:`save`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.frames: list[Detections] = []

    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        dets: Detections = self.inner.track(image)
        self.frames.append(dets)
        return dets

    def reset(self) -> None:
        self.inner.reset()

    def save(self, path: Path) -> None:
        names: dict[int, str] = {}
        rows = []
        for i, d in enumerate(self.frames):
            names.update(d.class_names)
            for k in range(len(d)):
                rows.append([i, *d.xyxy[k].tolist(), d.confidence[k], d.class_id[k], d.tracker_id[k]])
        arr = np.array(rows, dtype=np.float64).reshape(-1, 8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp, rows=arr, frames=np.array([len(self.frames)]), names=np.array([json.dumps(names)])
        )
        tmp.replace(path)


class ReplayedDetector:
    """Hands out a recording's detections frame by frame (the images are ignored)."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            rows = data["rows"]
            n = int(data["frames"][0])
            names = {int(k): v for k, v in json.loads(str(data["names"][0])).items()}
        self.class_names = names
        self._frames: list[Detections] = []
        index = rows[:, 0].astype(np.int64) if len(rows) else np.zeros(0, np.int64)
        for i in range(n):
            r = rows[index == i]
            self._frames.append(
                Detections(
                    xyxy=r[:, 1:5].copy(),
                    confidence=r[:, 5].copy(),
                    class_id=r[:, 6].astype(np.int64),
                    tracker_id=r[:, 7].astype(np.int64),
                    class_names=names,
                )
            )
        self._next = 0

    def __len__(self) -> int:
        return len(self._frames)

    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        if self._next >= len(self._frames):
            return Detections.empty(self.class_names)
        dets = self._frames[self._next]
        self._next += 1
        return dets

    def reset(self) -> None:
        """Recorded tracks cannot be re-tracked; a reset changes nothing."""
