"""Camera tampering checks on a small grey copy of each frame: frozen, black, blurred, moved.

Blur and movement are judged against the camera's own healthy baseline (learned in the first frames
and refreshed slowly), so a dim or plain scene is not called blurred just for being plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from citywatch.site import TamperingRule


@dataclass(frozen=True, slots=True)
class FrameHealth:
    frozen_s: float
    black: bool
    blurred: bool
    moved: bool
    sharpness: float
    similarity: float


class TamperCheck:
    """Per-frame observations; the incident engine decides when a condition lasted long enough."""

    def __init__(self, rule: TamperingRule, size: tuple[int, int] = (160, 90), warmup: int = 10) -> None:
        self.rule = rule
        self.size = size
        self.warmup = warmup
        self._prev: np.ndarray[Any, Any] | None = None
        self._frozen_since: float | None = None
        self._sharp_base: float | None = None
        self._edges_ref: np.ndarray[Any, Any] | None = None
        self._frames = 0

    def observe(self, image: np.ndarray[Any, Any], t: float) -> FrameHealth:
        # Subsample first: an area resize of a full HD frame costs more than everything else per frame.
        step = max(1, image.shape[1] // (self.size[0] * 2))
        small = cv2.resize(image[::step, ::step], self.size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        self._frames += 1
        mean = float(grey.mean())
        black = mean < self.rule.black_level
        sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())

        if self._prev is not None and float(cv2.absdiff(grey, self._prev).mean()) < 0.5:
            if self._frozen_since is None:
                self._frozen_since = t
        else:
            self._frozen_since = None
        self._prev = grey
        frozen_s = 0.0 if self._frozen_since is None else t - self._frozen_since

        edges = cv2.dilate(cv2.Canny(grey, 50, 150), np.ones((3, 3), np.uint8))
        similarity = 1.0
        if self._edges_ref is not None:
            ref = self._edges_ref > 0
            cur = edges > 0
            union = int(np.logical_or(ref, cur).sum())
            similarity = float(np.logical_and(ref, cur).sum()) / union if union else 1.0

        blurred = False
        moved = False
        if self._frames <= self.warmup:
            self._sharp_base = (
                sharpness if self._sharp_base is None else 0.8 * self._sharp_base + 0.2 * sharpness
            )
            if self._frames == self.warmup:
                self._edges_ref = edges
        elif not black and frozen_s == 0.0:
            base = self._sharp_base or sharpness
            blurred = sharpness < self.rule.blur_threshold or sharpness < 0.4 * base
            moved = self._edges_ref is not None and similarity < self.rule.moved_threshold
            if not blurred and not moved:
                # Slow refresh: lighting changes over the day are not tampering.
                self._sharp_base = 0.995 * base + 0.005 * sharpness
                if self._frames % 300 == 0:
                    self._edges_ref = edges
        return FrameHealth(frozen_s, black, blurred, moved, sharpness, similarity)
