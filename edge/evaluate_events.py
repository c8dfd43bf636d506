"""``citywatch eval --events``: raised incidents against the ``events`` of a label file.

An incident matches a labelled event when the types agree and the incident starts within the event's
span widened by ``tolerance_s`` on each side (an alert raised before the event began is not about it).
Each labelled event takes at most one incident (the earliest); another incident of the same type
starting within an already matched event is a duplicate, neither a hit nor a false alarm.
Every other incident is a false alarm, so clips without events measure false alarms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from citywatch.site import Camera, DetectorSettings, FileSource, LatLon, SiteConfig, SiteInfo
from contract.messages import IncidentEvent, IncidentMessage
from edge.capture import probe_fps
from edge.detect import Detector
from edge.evaluate import LABEL_CLASSES, LabelError
from edge.replay import replay

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Raised:
    incident_id: str
    type: str
    start_s: float
    end_s: float
    summary: str


def load_events(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The label file and its events (an empty list where it has none)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: {exc}") from exc
    events = data.get("events") or []
    for i, ev in enumerate(events):
        frames = ev.get("frames")
        if not isinstance(ev.get("type"), str) or not (
            isinstance(frames, list) and len(frames) == 2 and frames[0] <= frames[1]
        ):
            raise LabelError(f"{path}: events[{i}] needs a 'type' and 'frames': [first, last]")
    if events and not data.get("fps"):
        raise LabelError(f"{path}: 'fps' is needed to place events in time")
    return data, events


def raised_incidents(messages: list[tuple[str, Any]], clip_end_s: float) -> list[Raised]:
    """Incidents of a replay, each with its start and end in seconds from the clip's first frame."""
    starts: dict[str, IncidentMessage] = {}
    ends: dict[str, float] = {}
    for _, msg in messages:
        if not isinstance(msg, IncidentMessage):
            continue
        key = str(msg.incident_id)
        if msg.event is IncidentEvent.START:
            starts[key] = msg
        elif msg.event is IncidentEvent.END and msg.ended_at is not None:
            ends[key] = (msg.ended_at - START).total_seconds()
    out = []
    for key, msg in starts.items():
        start = (msg.started_at - START).total_seconds()
        out.append(Raised(key, msg.type.value, start, max(ends.get(key, clip_end_s), start), msg.summary))
    return sorted(out, key=lambda r: r.start_s)


def score(
    events: list[dict[str, Any]], raised: list[Raised], fps: float, tolerance_s: float
) -> dict[str, Any]:
    """Match incidents to labelled events; recall, precision, false alarms, time to alert."""
    spans = [(ev["frames"][0] / fps, ev["frames"][1] / fps) for ev in events]
    taken: dict[int, Raised] = {}
    used: set[str] = set()
    for i, ev in enumerate(events):
        a, b = spans[i]
        for r in raised:
            if r.incident_id in used or r.type != ev["type"]:
                continue
            if a - tolerance_s <= r.start_s <= b + tolerance_s:
                taken[i] = r
                used.add(r.incident_id)
                break
    false_alarms: list[Raised] = []
    duplicates = 0
    for r in raised:
        if r.incident_id in used:
            continue
        overlaps = any(
            ev["type"] == r.type and spans[i][0] - tolerance_s <= r.start_s <= spans[i][1] + tolerance_s
            for i, ev in enumerate(events)
        )
        if overlaps:
            duplicates += 1
        else:
            false_alarms.append(r)
    types = sorted({ev["type"] for ev in events} | {r.type for r in raised})
    per_type: dict[str, dict[str, Any]] = {}
    for ty in types:
        n_ev = sum(1 for ev in events if ev["type"] == ty)
        hits = sum(1 for i in taken if events[i]["type"] == ty)
        fa = sum(1 for r in false_alarms if r.type == ty)
        per_type[ty] = {
            "events": n_ev,
            "matched": hits,
            "recall": round(hits / n_ev, 4) if n_ev else None,
            "precision": round(hits / (hits + fa), 4) if hits + fa else None,
            "false_alarms": fa,
        }
    hits = len(taken)
    return {
        "events": len(events),
        "incidents": len(raised),
        "recall": round(hits / len(events), 4) if events else None,
        "precision": round(hits / (hits + len(false_alarms)), 4) if hits + len(false_alarms) else None,
        "false_alarms": len(false_alarms),
        "duplicates": duplicates,
        "per_type": per_type,
        "time_to_alert_s": [round(taken[i].start_s - spans[i][0], 2) for i in sorted(taken)],
        "matched": [
            {
                "type": events[i]["type"],
                "frames": events[i]["frames"],
                "incident_start_s": round(taken[i].start_s, 2),
                "time_to_alert_s": round(taken[i].start_s - spans[i][0], 2),
                "summary": taken[i].summary,
            }
            for i in sorted(taken)
        ],
        "missed": [
            {"type": ev["type"], "frames": ev["frames"]} for i, ev in enumerate(events) if i not in taken
        ],
        "false_alarm_incidents": [
            {"type": r.type, "start_s": round(r.start_s, 2), "end_s": round(r.end_s, 2), "summary": r.summary}
            for r in false_alarms
        ],
    }


def default_site(video: Path, model: str, conf: float = 0.1, imgsz: int = 640) -> tuple[SiteConfig, Camera]:
    """A camera nobody configured: the road-safety rules with their defaults over the whole frame."""
    camera = Camera(
        id="eval",
        name="eval",
        location=LatLon(lat=0, lon=0),
        source=FileSource(path=str(video)),
        detector=DetectorSettings(model=model, classes=list(LABEL_CLASSES), conf=conf, imgsz=imgsz),
    )
    site = SiteConfig(
        site=SiteInfo(id="eval", name="eval", timezone="UTC", center=LatLon(lat=0, lon=0), bin_seconds=3600),
        cameras=[camera],
    )
    return site, camera


def evaluate_events(
    labels_path: Path | None,
    video: Path,
    site: SiteConfig,
    camera: Camera,
    stride: int = 1,
    tolerance_s: float = 2.0,
    detector: Detector | None = None,
) -> dict[str, Any]:
    """Replay ``video`` through ``camera``'s pipeline and score its incidents against the labels.

    Without a label file the clip has no events: every incident is a false alarm.
    """
    labels, events = load_events(labels_path) if labels_path is not None else ({}, [])
    result = replay(str(video), site, camera, start=START, stride=stride, detector=detector)
    fps = float(labels.get("fps") or probe_fps(FileSource(path=str(video))))
    clip_end = float(labels.get("frames") or result.frames * stride) / fps
    report = score(events, raised_incidents(result.messages, clip_end), fps, tolerance_s)
    return {
        "video": str(video),
        "labels": str(labels_path) if labels_path is not None else None,
        "camera": camera.id,
        "frames": result.frames,
        "stride": stride,
        "seconds": round(result.seconds, 2),
        "tolerance_s": tolerance_s,
        **report,
    }
