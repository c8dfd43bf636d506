"""Cheap motion detection at low resolution that decides when a camera's frame goes to the detector.

A frame is detected when something moved in the detection region since the previous frame, when a
track was moving in the last detection, for ``hold_s`` after either, and otherwise at ``idle_fps``
(a parked car and an occupied zone stay up to date). A static scene therefore costs about one
detection a second instead of one per frame, and the detector is free for the cameras that move.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from citywatch.site_detector import MotionSettings
from edge.analytics.tracks import TrackState
from edge.roi import NormBox, pixel_box

WIDTH = 320  # motion is measured at this width
PIXEL_DELTA = 15  # grey-level change (after a blur) that counts as a changed pixel


class MotionGate:
    def __init__(self, settings: MotionSettings, roi: NormBox | None = None) -> None:
        self.settings = settings
        self.roi = roi
        self._prev: np.ndarray[Any, Any] | None = None
        self._last_detect = -1e18
        self._hot_until = -1e18
        self.last_fraction = 0.0

    def moving_fraction(self, image: np.ndarray[Any, Any]) -> float:
        """Fraction of the region's pixels that changed since the previous frame (0.0 for the first)."""
        h, w = image.shape[:2]
        small_h = max(1, round(h * WIDTH / w))
        small = cv2.resize(image, (WIDTH, small_h), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        if self.roi is not None:
            x1, y1, x2, y2 = pixel_box(self.roi, WIDTH, small_h)
            grey = grey[y1:y2, x1:x2]
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape:
            return 0.0  # nothing to compare with; the idle rate detects this frame anyway
        changed = cv2.absdiff(grey, prev) > PIXEL_DELTA
        return float(np.count_nonzero(changed)) / max(changed.size, 1)

    def should_detect(self, image: np.ndarray[Any, Any], t: float, tracks_moving: bool) -> bool:
        """Whether the frame at time ``t`` (seconds) goes to the detector."""
        if not self.settings.enabled:
            return True
        self.last_fraction = self.moving_fraction(image)
        if self.last_fraction >= self.settings.threshold or tracks_moving:
            self._hot_until = t + self.settings.hold_s
        due = t - self._last_detect >= 1.0 / self.settings.idle_fps
        if t < self._hot_until or due:
            self._last_detect = t
            return True
        return False


def near_a_line(
    lines: Sequence[Sequence[tuple[float, float]]], tracks: Sequence[TrackState], reach: float = 0.12
) -> bool:
    """Whether a moving track is within ``reach`` (normalized) of a counting line: its next frames
    decide a crossing, so the camera's frames go first at the shared detector."""
    for tr in tracks:
        if (tr.motion(1.0) or 0.0) <= 0.02:
            continue
        px, py = tr.anchor
        for points in lines:
            for (ax, ay), (bx, by) in itertools.pairwise(points):
                dx, dy = bx - ax, by - ay
                length2 = dx * dx + dy * dy
                u = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2)) if length2 else 0.0
                if math.hypot(px - (ax + u * dx), py - (ay + u * dy)) <= reach:
                    return True
    return False
