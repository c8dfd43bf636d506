"""Small synthetic clips for worker tests: a textured static road and a box that drives across it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.detections import Detections
from tests.edge.scripted import NAMES

W, H = 320, 240


def background() -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(7)
    img = rng.integers(60, 120, size=(H, W, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def car_frame(y_bottom: float | None, x: float = 0.5) -> np.ndarray[Any, Any]:
    """The background with a bright 40x30 px 'car' whose bottom centre is at (x, y_bottom) (normalized)."""
    img = background()
    if y_bottom is not None:
        cx, yb = int(x * W), int(y_bottom * H)
        img[max(0, yb - 30) : yb, max(0, cx - 20) : cx + 20] = 250
    return img


def write_clip(path: Path, frames: list[np.ndarray[Any, Any]], fps: float = 25.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def find_car(image: np.ndarray[Any, Any]) -> tuple[float, float, float, float] | None:
    """The bright box's xyxy in pixels, or None (what a detector would see)."""
    mask = image[:, :, 0] > 200
    if mask.sum() < 50:
        return None
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


class CarDetector:
    """Finds the bright box in the frame (the fake at the detector boundary); counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        self.calls += 1
        box = find_car(image)
        if box is None:
            return Detections.empty(NAMES)
        return Detections(
            xyxy=np.array([box], dtype=np.float64),
            confidence=np.array([0.9]),
            class_id=np.array([2], dtype=np.int64),
            tracker_id=np.array([1], dtype=np.int64),
            class_names=NAMES,
        )

    def reset(self) -> None:
        return


def site_yaml(prefix: str, clips: dict[str, Path], extra: str = "") -> str:
    """A site whose cameras play ``clips`` in real time, each with one horizontal line at y = 0.5."""
    cams = "".join(
        f"""
  - id: {cam}
    name: {cam}
    location: {{lat: 10.0, lon: 106.0}}
    source: {{kind: file, path: "{clip}"}}
    lines: [{{id: L1, points: [[0.0, 0.5], [1.0, 0.5]]}}]{extra}"""
        for cam, clip in clips.items()
    )
    return f"""
site: {{id: syn, name: Syn, timezone: UTC, center: {{lat: 10.0, lon: 106.0}}, bin_seconds: 60}}
mqtt_prefix: {prefix}
cameras:{cams}
"""
