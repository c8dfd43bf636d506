"""Detection and tracking behind a small protocol; Ultralytics YOLO is the production backend.

One :class:`SharedModel` per worker holds the only copy of the weights; every camera owns its own
:class:`TrackingDetector` (its ByteTrack/BoT-SORT state), so track ids are per camera and a slow camera
never disturbs another one's tracker. Ultralytics is imported and each model loaded and warmed up once,
under one lock: concurrent first use of Ultralytics (its import-time set-up, OpenVINO's
``create_infer_request``) deadlocked a worker whose cameras started together.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from citywatch.site import DetectorSettings
from edge.detections import BoxArray, Detections
from edge.errors import ModelError
from edge.roi import NormBox, crop, shift

#: The detection region for a frame size (None: the whole frame).
RoiFn = Callable[[int, int], "NormBox | None"]

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


#: Serialises Ultralytics' import, model loading and warm-up (see the module docstring).
_ULTRALYTICS_LOCK = threading.RLock()


def import_ultralytics() -> Any:
    """Import Ultralytics once, with its first-run banner and log handler on stderr, never stdout.

    Ultralytics prints "Creating new Ultralytics Settings ..." on the first run on a machine and
    attaches its log handler to whatever ``sys.stdout`` is at import time; ``--json`` outputs must
    stay pure JSON, so stdout is pointed at stderr for the import. Also imports the tracker modules
    here, on one thread, so camera threads never race on Python's import lock.
    """
    offline_defaults()
    with _ULTRALYTICS_LOCK:
        if "ultralytics" not in sys.modules:
            with contextlib.redirect_stdout(sys.stderr):
                import ultralytics  # noqa: PLC0415
                import ultralytics.trackers.bot_sort  # noqa: PLC0415
                import ultralytics.trackers.byte_tracker  # noqa: PLC0415
                import ultralytics.trackers.utils.matching  # noqa: F401, PLC0415
                from ultralytics.engine.results import Boxes  # noqa: F401, PLC0415
        # Ultralytics resets its logger to INFO at import; keep its chatter at warnings and above.
        logging.getLogger("ultralytics").setLevel(max(logging.WARNING, logging.getLogger().level))
        return sys.modules["ultralytics"]


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
    import_ultralytics()
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


class SharedModel:
    """The one copy of a YOLO model in a worker; detection only (no tracker state).

    Loading and the first inference (Ultralytics' warm-up, OpenVINO's infer request) happen in
    ``__init__`` under the module lock; afterwards :meth:`predict` may be called from any thread
    (calls are serialised: one model object is not safe to run concurrently).
    """

    def __init__(self, settings: DetectorSettings) -> None:
        check_model_reference(settings.model)
        ultralytics = import_ultralytics()
        self.settings = settings
        self._lock = threading.Lock()
        with _ULTRALYTICS_LOCK:
            try:
                self._model = ultralytics.YOLO(settings.model, task="detect")
            except Exception as exc:  # Ultralytics raises many types for unreadable weights
                raise ModelError(f"cannot load model {settings.model!r}: {exc}") from exc
            self.class_names: dict[int, str] = dict(self._model.names)
            # Warm-up: the first inference sets up the runtime (OpenVINO's infer request) here, once.
            self.predict([np.zeros((settings.imgsz, settings.imgsz, 3), np.uint8)], settings)

    def class_ids(self, classes: Sequence[str]) -> list[int]:
        wanted = set(classes)
        unknown = wanted - set(self.class_names.values())
        if unknown:
            raise ModelError(f"classes {sorted(unknown)} are not in model {self.settings.model!r}")
        return sorted(i for i, n in self.class_names.items() if n in wanted)

    def predict(self, images: Sequence[np.ndarray[Any, Any]], settings: DetectorSettings) -> list[BoxArray]:
        """Raw boxes per image, in one batched call (the backend splits it if it must)."""
        if not images:
            return []
        # CUDA: half precision (Ultralytics' ``quantize=16``); CPU runtimes keep their own precision.
        precision = {"quantize": 16} if settings.device.startswith("cuda") else {}
        with self._lock:
            results = self._model.predict(
                list(images),
                imgsz=settings.imgsz,
                conf=settings.conf,
                iou=settings.iou,
                classes=sorted(i for i, n in self.class_names.items() if n in set(settings.classes)),
                device=settings.device,
                verbose=False,
                **precision,
            )
        return [r.boxes.data.cpu().numpy().astype(np.float64).reshape(-1, 6) for r in results]


#: A function from one image to its raw boxes (the shared model directly, or through the scheduler).
DetectFn = Callable[[np.ndarray[Any, Any]], BoxArray]


def to_detections(boxes: BoxArray, class_names: dict[int, str]) -> Detections:
    """Untracked detections (tracker id -1) from raw boxes."""
    n = len(boxes)
    if n == 0:
        return Detections.empty(class_names)
    return Detections(
        xyxy=boxes[:, :4].astype(np.float64),
        confidence=boxes[:, 4].astype(np.float64),
        class_id=boxes[:, 5].astype(np.int64),
        tracker_id=np.full(n, -1, np.int64),
        class_names=class_names,
    )


class TrackingDetector:
    """One camera's detector: raw boxes from a (shared) detect function + this camera's own tracker."""

    def __init__(
        self,
        detect: DetectFn,
        class_names: dict[int, str],
        tracker: str = "bytetrack",
        roi: RoiFn | None = None,
    ) -> None:
        self.detect = detect
        self.class_names = class_names
        self.roi_for = roi
        self._roi: tuple[tuple[int, int], NormBox | None] | None = None
        self._tracker_kind = tracker
        self._tracker = make_tracker(tracker)

    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        return self.update_tracks(self.detect_region(image), image)

    def detect_region(self, image: np.ndarray[Any, Any]) -> BoxArray:
        """Raw boxes of the frame, detected on the region of interest when there is one."""
        roi = self.region(image.shape[1], image.shape[0])
        if roi is None:
            return self.detect(image)
        part, offset = crop(image, roi)
        return shift(self.detect(part), offset)

    def region(self, width: int, height: int) -> NormBox | None:
        if self.roi_for is None:
            return None
        if self._roi is None or self._roi[0] != (width, height):
            self._roi = ((width, height), self.roi_for(width, height))
        return self._roi[1]

    def update_tracks(self, boxes: BoxArray, image: np.ndarray[Any, Any]) -> Detections:
        """Feed one frame's raw boxes (pixels of ``image``) to this camera's tracker."""
        from ultralytics.engine.results import Boxes  # noqa: PLC0415  (imported by make_tracker)

        tracks = self._tracker.update(Boxes(boxes.astype(np.float32), image.shape[:2]), image)
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

    def reset(self) -> None:
        """Forget tracks (after a stream reconnect or a file loop)."""
        self._tracker = make_tracker(self._tracker_kind)


class UltralyticsTracker(TrackingDetector):
    """A model of its own plus a tracker: one camera alone (replay, eval, benchmarks)."""

    def __init__(
        self, settings: DetectorSettings, model: SharedModel | None = None, roi: RoiFn | None = None
    ) -> None:
        self.model = model or SharedModel(settings)
        self.model.class_ids(settings.classes)  # unknown classes fail here, clearly
        self._settings = settings
        super().__init__(self.detect_raw, self.model.class_names, settings.tracker, roi)

    def detect_raw(self, image: np.ndarray[Any, Any]) -> BoxArray:
        """The model's raw boxes for one frame (the detection stage alone)."""
        return self.model.predict([image], self._settings)[0]

    def predict(self, image: np.ndarray[Any, Any]) -> Detections:
        """Detection only (no tracker), for benchmarks."""
        return to_detections(self.detect_raw(image), self.class_names)
