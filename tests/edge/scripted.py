"""Scripted detections for unit tests: the fake at the detector boundary."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from edge.detections import Detections

NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
IDS = {v: k for k, v in NAMES.items()}
W, H = 400, 300
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

# (raw track id, class, x centre, y bottom) in normalized units; box 0.06 wide, 0.1 tall (0.2 for people).
Obj = tuple[int, str, float, float]


def dets(objs: Sequence[Obj], size: float = 0.06) -> Detections:
    if not objs:
        return Detections.empty(NAMES)
    rows = []
    for _, cls, x, y in objs:
        h = 0.2 if cls == "person" else 0.1
        rows.append([(x - size / 2) * W, (y - h) * H, (x + size / 2) * W, y * H])
    return Detections(
        xyxy=np.array(rows, dtype=np.float64),
        confidence=np.full(len(objs), 0.9),
        class_id=np.array([IDS[o[1]] for o in objs], dtype=np.int64),
        tracker_id=np.array([o[0] for o in objs], dtype=np.int64),
        class_names=NAMES,
    )


def image(value: int = 90) -> np.ndarray[Any, Any]:
    return np.full((H, W, 3), value, dtype=np.uint8)


def at(i: int, fps: float = 10.0) -> datetime:
    return T0 + timedelta(seconds=i / fps)


class ScriptedDetector:
    """Plays back a list of frames of objects (implements edge.detect.Detector)."""

    def __init__(self, frames: Sequence[Sequence[Obj]]) -> None:
        self.frames = list(frames)
        self.i = 0

    def track(self, img: np.ndarray[Any, Any]) -> Detections:
        objs = self.frames[self.i] if self.i < len(self.frames) else []
        self.i += 1
        return dets(objs)

    def reset(self) -> None:
        self.i = 0
