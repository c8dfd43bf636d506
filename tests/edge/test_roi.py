"""The detection region: used where it enlarges objects, never where it would only cut them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from citywatch.site import parse_site
from edge.detect import TrackingDetector
from edge.roi import region_of_interest
from tests.edge.scripted import NAMES


def camera(lines: str, analysis: str = "") -> Any:
    text = f"""
site: {{id: s, name: S, timezone: UTC, center: {{lat: 0, lon: 0}}}}
cameras:
  - id: c
    name: C
    location: {{lat: 0, lon: 0}}
    source: {{kind: file, path: x.mp4}}
    lines: {lines}{analysis}
"""
    return parse_site(text, "site.yaml").cameras[0]


@pytest.mark.parametrize(
    ("lines", "analysis", "expected"),
    [
        ("[{id: L, points: [[0.4, 0.5], [0.6, 0.5]]}]", "", None),  # off unless configured
        (
            "[{id: L, points: [[0.4, 0.5], [0.6, 0.5]]}]",
            "\n    analysis: {roi: {enabled: true}}",
            (0.28, 0.26, 0.72, 0.62),
        ),
        (
            "[{id: L, points: [[0.0, 0.6], [1.0, 0.6]]}]",
            "\n    analysis: {roi: {enabled: true, margin: 0.1}}",
            (0, 0.4, 1, 0.7),
        ),
        ("[]", "\n    analysis: {roi: {enabled: true, box: [0.1, 0.2, 0.3, 0.4]}}", (0.1, 0.2, 0.3, 0.4)),
        ("[]", "\n    analysis: {roi: {enabled: true}}", None),
    ],
    ids=["default-off", "short-line", "full-width-line-margin", "explicit-box", "no-lines"],
)
def test_region_of_interest(lines: str, analysis: str, expected: tuple[float, ...] | None) -> None:
    roi = region_of_interest(camera(lines, analysis), 1920, 1080)
    if expected is None:
        assert roi is None
    else:
        assert roi is not None and np.allclose(roi, expected)


def test_boxes_found_in_the_region_come_back_in_frame_coordinates() -> None:
    seen: list[tuple[int, ...]] = []

    def detect(image: np.ndarray[Any, Any]) -> Any:
        seen.append(image.shape)
        return np.array([[10.0, 20.0, 30.0, 40.0, 0.9, 2.0]])

    det = TrackingDetector(detect, NAMES, roi=lambda w, h: (0.5, 0.25, 1.0, 1.0))
    boxes = det.detect_region(np.zeros((100, 200, 3), np.uint8))
    assert seen == [(75, 100, 3)]
    assert boxes[:, :4].tolist() == [[110.0, 45.0, 130.0, 65.0]]
