"""``citywatch eval``: counting accuracy of the real pipeline against a hand-made label file.

Label format: ``../shared/labels/FORMAT.md``. Score: per (line, direction, class) cell the absolute
error; overall accuracy ``1 - sum(|counted - truth|) / sum(truth)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from citywatch.site import (
    Camera,
    CountingLine,
    DetectorSettings,
    Directions,
    FileSource,
    LatLon,
    SiteConfig,
    SiteInfo,
)
from contract.messages import CountsMessage
from edge.replay import replay

LABEL_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


class LabelError(ValueError):
    """A label file that does not follow FORMAT.md."""


def direction_names(points: list[tuple[float, float]]) -> Directions:
    """Image-edge names of the two crossing directions of a line (FORMAT.md convention)."""
    (ax, ay), (bx, by) = points[0], points[-1]
    # s > 0 is to the right-hand side of A->B; its normal in image coordinates is (-dy, dx).
    nx, ny = -(by - ay), bx - ax
    if abs(ny) >= abs(nx):
        return (
            Directions(positive="down", negative="up")
            if ny > 0
            else Directions(positive="up", negative="down")
        )
    return (
        Directions(positive="right", negative="left")
        if nx > 0
        else Directions(positive="left", negative="right")
    )


@dataclass(frozen=True, slots=True)
class Cell:
    line: str
    direction: str
    cls: str
    counted: int
    truth: int


def load_labels(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        for key in ("lines", "totals"):
            if key not in data:
                raise LabelError(f"{path}: missing {key!r}")
    except (OSError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: {exc}") from exc
    return data


def evaluate(
    labels_path: Path, video: Path, model: str, stride: int = 1, conf: float = 0.1, imgsz: int = 640
) -> dict[str, Any]:
    labels = load_labels(labels_path)
    lines = [
        CountingLine(
            id=ln["id"],
            points=[tuple(p) for p in ln["points"]],
            directions=direction_names([tuple(p) for p in ln["points"]]),
        )
        for ln in labels["lines"]
    ]
    camera = Camera(
        id="eval",
        name="eval",
        location=LatLon(lat=0, lon=0),
        source=FileSource(path=str(video)),
        detector=DetectorSettings(model=model, classes=list(LABEL_CLASSES), conf=conf, imgsz=imgsz),
        lines=lines,
    )
    site = SiteConfig(
        site=SiteInfo(id="eval", name="eval", timezone="UTC", center=LatLon(lat=0, lon=0), bin_seconds=3600),
        cameras=[camera],
    )
    result = replay(str(video), site, camera, start=datetime(2026, 1, 1, tzinfo=UTC), stride=stride)
    counted: dict[tuple[str, str, str], int] = {}
    for _, msg in result.messages:
        if isinstance(msg, CountsMessage):
            for c in msg.lines:
                key = (c.line_id, c.direction, c.cls)
                counted[key] = counted.get(key, 0) + c.count
    truth: dict[tuple[str, str, str], int] = {}
    for line_id, by_dir in labels["totals"].items():
        for direction, by_cls in by_dir.items():
            for cls, n in by_cls.items():
                truth[(line_id, direction, cls)] = int(n)
    cells = [
        Cell(k[0], k[1], k[2], counted.get(k, 0), truth.get(k, 0)) for k in sorted(set(counted) | set(truth))
    ]
    total_truth = sum(c.truth for c in cells)
    error = sum(abs(c.counted - c.truth) for c in cells)
    accuracy = 1.0 - error / total_truth if total_truth else (1.0 if error == 0 else 0.0)
    return {
        "video": str(video),
        "labels": str(labels_path),
        "model": model,
        "frames": result.frames,
        "stride": stride,
        "seconds": round(result.seconds, 2),
        "overall_accuracy": round(accuracy, 4),
        "counted_total": sum(c.counted for c in cells),
        "truth_total": total_truth,
        "cells": [
            {"line": c.line, "direction": c.direction, "class": c.cls, "counted": c.counted, "truth": c.truth}
            for c in cells
        ],
    }
