"""Detection and tracking behind a small protocol; Ultralytics YOLO is the production backend.

Each camera owns its own :class:`UltralyticsTracker` (model + ByteTrack/BoT-SORT state), so track ids
are per camera and a slow camera never disturbs another one's tracker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from citywatch.site import DetectorSettings
from edge.detections import Detections
from edge.errors import ModelError

log = logging.getLogger(__name__)

_SUFFIXES = (".pt", ".onnx", ".engine", ".torchscript", ".mlpackage", ".tflite")


def offline_defaults() -> None:
    """Make Ultralytics never download or pip-install anything at run time (set before importing it)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path.home() / ".cache" / "citywatch-ultralytics"))


class Detector(Protocol):
    """Turns a BGR frame into tracked detections. One instance per camera."""

    def track(self, image: np.ndarray[Any, Any]) -> Detections: ...

    def reset(self) -> None: ...


def check_model_reference(model: str) -> None:
    """Fail early and clearly for a model that is neither a local path nor an Ultralytics name."""
    if Path(model).exists():
        return
    is_name = "/" not in model and "\\" not in model and model.endswith(_SUFFIXES)
    if not is_name:
        raise ModelError(f"model path {model!r} does not exist")


class UltralyticsTracker:
    """YOLO detection + ByteTrack/BoT-SORT through ``YOLO.track(persist=True)``."""

    def __init__(self, settings: DetectorSettings, frame_rate: float = 30.0) -> None:
        offline_defaults()
        check_model_reference(settings.model)
        from ultralytics import YOLO  # noqa: PLC0415  (heavy; only where a detector is built)

        try:
            self._model = YOLO(settings.model, task="detect")
        except Exception as exc:  # Ultralytics raises many types for unreadable weights
            raise ModelError(f"cannot load model {settings.model!r}: {exc}") from exc
        names: dict[int, str] = dict(self._model.names)
        self.class_names = names
        wanted = set(settings.classes)
        unknown = wanted - set(names.values())
        if unknown:
            raise ModelError(f"classes {sorted(unknown)} are not in model {settings.model!r}")
        self._classes = sorted(i for i, n in names.items() if n in wanted)
        self._settings = settings
        self._tracker_cfg = f"{settings.tracker}.yaml"
        self._frame_rate = frame_rate

    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        results = self._model.track(
            image,
            persist=True,
            imgsz=self._settings.imgsz,
            conf=self._settings.conf,
            iou=self._settings.iou,
            classes=self._classes,
            tracker=self._tracker_cfg,
            device=self._settings.device,
            verbose=False,
        )
        return self._to_detections(results[0])

    def predict(self, image: np.ndarray[Any, Any]) -> Detections:
        """Detection only (no tracker), for benchmarks."""
        results = self._model.predict(
            image,
            imgsz=self._settings.imgsz,
            conf=self._settings.conf,
            iou=self._settings.iou,
            classes=self._classes,
            device=self._settings.device,
            verbose=False,
        )
        return self._to_detections(results[0])

    def reset(self) -> None:
        """Forget tracks (after a stream reconnect or a file loop)."""
        predictor = getattr(self._model, "predictor", None)
        trackers = getattr(predictor, "trackers", None) if predictor is not None else None
        for tracker in trackers or []:
            tracker.reset()

    def _to_detections(self, result: Any) -> Detections:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty(self.class_names)
        ids = boxes.id
        n = len(boxes)
        return Detections(
            xyxy=boxes.xyxy.cpu().numpy().astype(np.float64),
            confidence=boxes.conf.cpu().numpy().astype(np.float64),
            class_id=boxes.cls.cpu().numpy().astype(np.int64),
            tracker_id=(ids.cpu().numpy().astype(np.int64) if ids is not None else np.full(n, -1, np.int64)),
            class_names=self.class_names,
        )
