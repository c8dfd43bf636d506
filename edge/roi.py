"""The region of a frame worth detecting on: the lines and zones of a camera plus a margin.

Cropping to it before detection spends the detector's fixed input size (640 px) on the part of the
scene that is counted, so small objects there (a motorbike far down the road) come out bigger. The same
box bounds the motion gate's region (edge/motion.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from citywatch.site import Camera
from edge.detections import BoxArray

#: Normalized x1, y1, x2, y2.
NormBox = tuple[float, float, float, float]


def region_of_interest(camera: Camera, width: int, height: int) -> NormBox | None:
    """The camera's detection region for a ``width`` x ``height`` frame, or None for the whole frame.

    Only where configured (``analysis.roi.enabled``): the detector letterboxes its input to a square,
    so a crop enlarges objects when its longer side is shorter than the frame's, but on the labelled
    us-arterial clip (vertical line) cropping lowered offline counting from 1.00 to 0.77-0.85 (tracks
    start later, at the crop's edge), so it is not chosen automatically.
    """
    roi = camera.analysis.roi
    if not roi.enabled:
        return None
    return roi.box if roi.box is not None else lines_box(camera)


def lines_box(camera: Camera) -> NormBox | None:
    """The box around the camera's lines and zones plus its margin; None without lines or zones."""
    points = [p for line in camera.lines for p in line.points] + [p for z in camera.zones for p in z.polygon]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    m = camera.analysis.roi.margin
    # Objects stand on their anchor (bottom centre) and rise above it: twice the margin upwards.
    return (max(0.0, min(xs) - m), max(0.0, min(ys) - 2 * m), min(1.0, max(xs) + m), min(1.0, max(ys) + m))


def pixel_box(box: NormBox, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1 = int(box[0] * width), int(box[1] * height)
    x2, y2 = max(x1 + 1, round(box[2] * width)), max(y1 + 1, round(box[3] * height))
    return x1, y1, min(x2, width), min(y2, height)


def crop(image: np.ndarray[Any, Any], box: NormBox) -> tuple[np.ndarray[Any, Any], tuple[int, int]]:
    """The region's pixels (a view, no copy) and its top-left offset."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = pixel_box(box, w, h)
    return image[y1:y2, x1:x2], (x1, y1)


def shift(boxes: BoxArray, offset: tuple[int, int]) -> BoxArray:
    """Raw boxes of a crop in the coordinates of the whole frame."""
    if not len(boxes) or offset == (0, 0):
        return boxes
    out = boxes.copy()
    out[:, [0, 2]] += offset[0]
    out[:, [1, 3]] += offset[1]
    return out
