"""Annotated JPEG frames: the evidence attached to incidents and the camera's latest view."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from citywatch.site import Camera
from contract.messages import Snapshot
from edge.analytics.tracks import TrackState

RED = (0, 0, 255)
GREEN = (80, 200, 80)
YELLOW = (0, 220, 255)
GREY = (200, 200, 200)


def annotate(
    image: np.ndarray[Any, Any],
    camera: Camera,
    tracks: Iterable[TrackState],
    highlight: set[int] | None = None,
    max_width: int = 960,
) -> np.ndarray[Any, Any]:
    """A copy of ``image`` (scaled to ``max_width``) with lines, zones and track boxes drawn."""
    h, w = image.shape[:2]
    scale = min(1.0, max_width / w)
    out = cv2.resize(image, (int(w * scale), int(h * scale))) if scale < 1.0 else image.copy()
    oh, ow = out.shape[:2]
    for zone in camera.zones:
        pts = np.array([(x * ow, y * oh) for x, y in zone.polygon], dtype=np.int32)
        cv2.polylines(out, [pts], True, RED if zone.kind == "restricted" else YELLOW, 1)
    for line in camera.lines:
        pts = np.array([(x * ow, y * oh) for x, y in line.points], dtype=np.int32)
        cv2.polylines(out, [pts], False, GREEN, 2)
    highlight = highlight or set()
    for tr in tracks:
        x0, y0, x1, y1 = tr.box
        hot = tr.track_id in highlight
        p0, p1 = (int(x0 * ow), int(y0 * oh)), (int(x1 * ow), int(y1 * oh))
        cv2.rectangle(out, p0, p1, RED if hot else GREY, 3 if hot else 1)
        cv2.putText(
            out,
            f"{tr.cls} #{tr.track_id}",
            (p0[0], max(12, p0[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            RED if hot else GREY,
            1,
            cv2.LINE_AA,
        )
    return out


def encode_jpeg(image: np.ndarray[Any, Any], quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV only fails on empty images
        raise ValueError("JPEG encoding failed")
    return bytes(buf)


def snapshot(image: np.ndarray[Any, Any]) -> Snapshot:
    h, w = image.shape[:2]
    return Snapshot(width=w, height=h, data_b64=base64.b64encode(encode_jpeg(image)).decode())
