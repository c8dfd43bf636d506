"""Offline processing of a video file: everything a camera would publish, as fast as possible."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from citywatch.site import Camera, DetectorSettings, FileSource, SiteConfig
from contract.messages import Envelope
from edge.capture import iter_file_frames, probe_fps
from edge.detect import Detector, UltralyticsTracker
from edge.emit import Emitter, MemorySink
from edge.pipeline import CameraPipeline
from edge.roi import region_of_interest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    messages: list[tuple[str, Envelope]]
    frames: int
    seconds: float
    pipeline: CameraPipeline


def stride_for(source_fps: float, max_fps: float | None) -> int:
    """Analyse every n-th frame so the analysed rate stays at or under ``max_fps``."""
    if not max_fps or max_fps >= source_fps:
        return 1
    return max(1, round(source_fps / max_fps))


def replay(
    video: str,
    site: SiteConfig,
    camera: Camera,
    edge_id: str = "replay",
    start: datetime | None = None,
    stride: int | None = None,
    detector: Detector | None = None,
) -> ReplayResult:
    """Run the camera's full pipeline over ``video`` and collect its messages in order."""
    start = start or datetime.now(UTC)
    fps = probe_fps(FileSource(path=video))
    step = stride or stride_for(fps, camera.detector.max_fps)
    det = detector or UltralyticsTracker(camera.detector, roi=partial(region_of_interest, camera))
    sink = MemorySink()
    emitter = Emitter(site.site.id, edge_id, camera.id, site.mqtt_prefix, sink)
    pipe = CameraPipeline(camera, site.site.bin_seconds, emitter, target_fps=fps / step)
    frames = 0
    last = start
    t0 = time.perf_counter()
    for frame in iter_file_frames(video, start, stride=step):
        pipe.process(frame.image, frame.captured_at, det.track(frame.image))
        frames += 1
        last = frame.captured_at
    pipe.close(last)
    return ReplayResult(sink.messages, frames, time.perf_counter() - t0, pipe)


def write_json(result: ReplayResult, out: Path) -> dict[str, Any]:
    doc = {
        "frames": result.frames,
        "seconds": round(result.seconds, 3),
        "messages": [
            {"topic": topic, "payload": json.loads(m.model_dump_json(exclude_none=True))}
            for topic, m in result.messages
        ],
    }
    out.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return doc


def detector_for(settings: DetectorSettings, model: str | None) -> DetectorSettings:
    return settings if model is None else settings.model_copy(update={"model": model})
