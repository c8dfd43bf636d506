"""Evidence clips: the ring keeps the seconds before a critical incident, the clip covers before and
after with the involved boxes drawn, it decodes, and it respects its size cap."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np

from citywatch.site_safety import EvidenceSettings
from contract import IncidentEvent, IncidentMessage, IncidentType
from contract.messages import EvidenceMessage
from edge.emit import Emitter, MemorySink
from edge.pipeline import CameraPipeline
from tests.edge.scripted import at
from tests.edge.test_safety import FPS, _camera, _dets, crash

# A textured background: a flat grey frame would make every clip tiny and hide the size cap.
_RNG = np.random.default_rng(7)
_NOISE = _RNG.integers(0, 255, size=(300, 400, 3), dtype=np.uint8)


def _replay(settings: EvidenceSettings) -> list[object]:
    cam = _camera(evidence=settings)
    sink = MemorySink()
    pipe = CameraPipeline(cam, 60, Emitter("site", "edge", cam.id, "cw", sink))
    frames = crash(after=150)
    for i, boxes in enumerate(frames):
        img = np.roll(_NOISE, i * 3, axis=1)
        pipe.process(img, at(i, FPS), _dets(boxes))
    pipe.close(at(len(frames), FPS))
    return [m for _, m in sink.messages]


def clip_of_a_crash(tmp_path: Path) -> tuple[EvidenceMessage, IncidentMessage, Path]:
    msgs = _replay(EvidenceSettings(before_s=3.0, after_s=4.0, fps=5.0))
    start = next(
        m
        for m in msgs
        if isinstance(m, IncidentMessage)
        and m.type is IncidentType.COLLISION
        and m.event is IncidentEvent.START
    )
    clips = [m for m in msgs if isinstance(m, EvidenceMessage)]
    assert len(clips) == 1 and clips[0].incident_id == start.incident_id
    path = tmp_path / "clip.webm"
    path.write_bytes(base64.b64decode(clips[0].data_b64))
    return clips[0], start, path


def test_a_critical_incident_gets_one_clip_from_before_to_after(tmp_path: Path) -> None:
    clip, start, path = clip_of_a_crash(tmp_path)
    assert clip.content_type == "video/webm"
    # 3 s before the start and 4 s after, at 5 fps: about 35 frames.
    assert 30 <= clip.frames <= 37
    assert abs((start.started_at - clip.clip_start).total_seconds() - 3.0) < 0.3
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(img)
    cap.release()
    assert len(decoded) == clip.frames
    assert decoded[0].shape[:2] == (clip.height, clip.width)
    # The involved car is boxed in red (BGR 0, 0, 255) in the frame where the incident starts.
    at_start = decoded[15]
    red = (at_start[:, :, 2] > 200) & (at_start[:, :, 0] < 60) & (at_start[:, :, 1] < 60)
    assert red.sum() > 50


def test_no_clip_below_the_severity_or_when_off() -> None:
    off = _replay(EvidenceSettings(enabled=False))
    assert not any(isinstance(m, EvidenceMessage) for m in off)
    assert any(isinstance(m, IncidentMessage) for m in off)


def test_a_clip_over_the_cap_is_scaled_down_then_dropped() -> None:
    small = _replay(EvidenceSettings(before_s=3.0, after_s=4.0, fps=5.0, max_bytes=10_000))
    assert not any(isinstance(m, EvidenceMessage) for m in small)
    assert any(isinstance(m, IncidentMessage) for m in small)  # the incident itself still goes out
