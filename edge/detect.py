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


def _proximity_cost(tracks: list[Any], detections: list[Any], reach: float = 1.2) -> np.ndarray[Any, Any]:
    """0 when a detection's centre is on the track's, 1 at ``reach`` box diagonals away (or further)."""
    t = np.array([tr.xywh for tr in tracks], dtype=np.float64).reshape(-1, 4)
    d = np.array([de.xywh for de in detections], dtype=np.float64).reshape(-1, 4)
    diag = np.hypot(t[:, 2], t[:, 3])[:, None]
    dist = np.hypot(t[:, None, 0] - d[None, :, 0], t[:, None, 1] - d[None, :, 1])
    size = np.minimum(t[:, None, 3], d[None, :, 3]) / np.maximum(t[:, None, 3], d[None, :, 3])
    cost = np.clip(dist / (reach * np.maximum(diag, 1e-6)), 0.0, 1.0)
    return np.where(size > 0.5, cost, 1.0)  # a box half or twice the size is another object


def make_tracker(kind: str) -> Any:
    """A ByteTrack (or BoT-SORT) instance whose association also accepts nearby boxes.

    Plain ByteTrack associates by IoU only. At the frame rates an edge box really achieves (5-10 fps),
    a motorbike moves its own length between frames, IoU is zero, new tracks are never confirmed and
    the object is never reported. Taking the better of IoU and centre proximity (scaled by the box
    size) keeps such tracks; Kalman prediction still does the work once a track has a velocity.
    """
    from ultralytics.trackers.bot_sort import BOTSORT  # noqa: PLC0415
    from ultralytics.trackers.byte_tracker import BYTETracker  # noqa: PLC0415
    from ultralytics.trackers.utils import matching  # noqa: PLC0415
    from ultralytics.utils import YAML, IterableSimpleNamespace  # noqa: PLC0415
    from ultralytics.utils.checks import check_yaml  # noqa: PLC0415

    cfg = IterableSimpleNamespace(**YAML.load(check_yaml(f"{kind}.yaml")))
    if kind == "botsort":
        cfg.with_reid = False
        return BOTSORT(args=cfg)

    class ProximityByteTracker(BYTETracker):  # type: ignore[misc]
        def get_dists(self, tracks: list[Any], detections: list[Any]) -> Any:
            dists = matching.iou_distance(tracks, detections)
            if len(tracks) and len(detections):
                dists = np.minimum(dists, _proximity_cost(tracks, detections))
            if self.args.fuse_score:
                dists = matching.fuse_score(dists, detections)
            return dists

    return ProximityByteTracker(args=cfg)


class UltralyticsTracker:
    """YOLO detection (Ultralytics) + ByteTrack/BoT-SORT, one tracker per camera."""

    def __init__(self, settings: DetectorSettings) -> None:
        offline_defaults()
        check_model_reference(settings.model)
        from ultralytics import YOLO  # noqa: PLC0415  (heavy; only where a detector is built)

        # Ultralytics resets its logger to INFO on stdout at import; keep stdout for our own output.
        logging.getLogger("ultralytics").setLevel(max(logging.WARNING, logging.getLogger().level))

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
        self._tracker = make_tracker(settings.tracker)

    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        return self.update_tracks(self.detect_raw(image), image)

    def detect_raw(self, image: np.ndarray[Any, Any]) -> Any:
        """The model's raw result for one frame (the detection stage alone)."""
        return self._predict(image)

    def update_tracks(self, result: Any, image: np.ndarray[Any, Any]) -> Detections:
        """Feed one frame's raw detections to this camera's tracker (the tracking stage alone)."""
        boxes = result.boxes.cpu().numpy()
        tracks = self._tracker.update(boxes, image)
        if len(tracks) == 0:
            return Detections.empty(self.class_names)
        # rows: x1, y1, x2, y2, track id, score, class, detection index
        return Detections(
            xyxy=tracks[:, :4].astype(np.float64),
            confidence=tracks[:, 5].astype(np.float64),
            class_id=tracks[:, 6].astype(np.int64),
            tracker_id=tracks[:, 4].astype(np.int64),
            class_names=self.class_names,
        )

    def _predict(self, image: np.ndarray[Any, Any]) -> Any:
        return self._model.predict(
            image,
            imgsz=self._settings.imgsz,
            conf=self._settings.conf,
            iou=self._settings.iou,
            classes=self._classes,
            device=self._settings.device,
            verbose=False,
        )[0]

    def predict(self, image: np.ndarray[Any, Any]) -> Detections:
        """Detection only (no tracker), for benchmarks."""
        return self._to_detections(self._predict(image))

    def reset(self) -> None:
        """Forget tracks (after a stream reconnect or a file loop)."""
        self._tracker = make_tracker(self._settings.tracker)

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
