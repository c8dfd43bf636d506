"""The models of one worker, each loaded once and shared by its cameras through a scheduler.

Models are loaded (and warmed up) one after another on the calling thread, before any camera thread
exists; a model that fails to load leaves its cameras down with the error, the others run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from citywatch.site import Camera, DetectorSettings
from edge.detect import Detector, RoiFn, SharedModel, TrackingDetector
from edge.errors import EdgeError
from edge.scheduler import DetectScheduler

log = logging.getLogger(__name__)

#: Tests: a detector per camera instead of the shared model (the fake at the detector boundary).
DetectorFactory = Callable[[Camera], Detector]


def model_key(settings: DetectorSettings) -> tuple[str, str]:
    """Cameras with the same model file on the same device share one loaded copy."""
    return settings.model, settings.device


class SharedDetectors:
    def __init__(self, max_batch: int = 0, factory: DetectorFactory | None = None) -> None:
        self.max_batch = max_batch
        self.factory = factory
        self._models: dict[tuple[str, str], SharedModel | EdgeError] = {}
        self._schedulers: dict[tuple[str, str], DetectScheduler] = {}

    @property
    def model_count(self) -> int:
        return sum(isinstance(m, SharedModel) for m in self._models.values())

    def _model(self, settings: DetectorSettings) -> SharedModel | EdgeError:
        key = model_key(settings)
        if key not in self._models:
            log.info("loading model %s on %s (shared by every camera that uses it)", *key)
            try:
                self._models[key] = SharedModel(settings)
            except EdgeError as exc:
                self._models[key] = exc
        return self._models[key]

    def detector_for(
        self, camera: Camera, stop: threading.Event, roi: RoiFn | None = None
    ) -> tuple[Detector | None, str]:
        """This camera's detector (own tracker, shared model), or None and the reason."""
        if self.factory is not None:
            return self.factory(camera), ""
        model = self._model(camera.detector)
        if isinstance(model, EdgeError):
            return None, str(model)
        try:
            model.class_ids(camera.detector.classes)
        except EdgeError as exc:
            return None, str(exc)
        key = model_key(camera.detector)
        scheduler = self._schedulers.get(key)
        if scheduler is None:
            batch = self.max_batch or (8 if camera.detector.device.startswith("cuda") else 1)
            scheduler = DetectScheduler(model.predict, batch, name=f"detect-{len(self._schedulers)}")
            self._schedulers[key] = scheduler
        scheduler.register(camera.id)
        detect: Callable[[Any], Any] = partial(
            scheduler.detect, camera.id, settings=camera.detector, stop=stop
        )
        return TrackingDetector(detect, model.class_names, camera.detector.tracker, roi), ""

    def scheduler_for(self, camera: Camera) -> DetectScheduler | None:
        return self._schedulers.get(model_key(camera.detector))

    def start(self) -> None:
        for s in self._schedulers.values():
            s.start()

    def start_new(self) -> None:
        """Start the schedulers created since :meth:`start` (a camera added at run time)."""
        for s in self._schedulers.values():
            if s.ident is None:
                s.start()

    def stop(self) -> None:
        for s in self._schedulers.values():
            s.stop()
