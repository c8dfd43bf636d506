"""One camera's analytics: tracks -> lines, zones, speed, incident rules -> count bins and incidents.

Per frame it has no side effect but handing messages to the emitter. Count bins are aligned to
``bin_seconds`` except the first after start and the last before stop, which cover only the time the
camera was really analysed, so ``(camera, bin_start)`` is unique across restarts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from citywatch.site import Camera, TamperingRule
from contract.messages import (
    CountsMessage,
    DirectionCount,
    HealthFlag,
    IncidentEvent,
    IncidentMessage,
    Movement,
    Point,
    Severity,
    SpeedStat,
    ZoneOccupancy,
)
from edge.analytics.episodes import Transition
from edge.analytics.incidents import FrameState, IncidentChange, RuleEngine
from edge.analytics.junctions import JunctionMovements
from edge.analytics.lines import Crossing, LineCounter, LineTally
from edge.analytics.safety import SafetyEngine, split_rules
from edge.analytics.speed import GroundPlane
from edge.analytics.tampering import FrameHealth, TamperCheck
from edge.analytics.tracks import TrackState, TrackStore
from edge.analytics.zones import ZoneMonitor
from edge.detections import Detections
from edge.emit import Emitter
from edge.evidence import EvidenceRecorder
from edge.snapshot import annotate, snapshot

log = logging.getLogger(__name__)

_EVENTS = {
    Transition.START: IncidentEvent.START,
    Transition.UPDATE: IncidentEvent.UPDATE,
    Transition.END: IncidentEvent.END,
}


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(slots=True)
class _Bin:
    start: float
    end: float
    frames: int = 0
    tally: LineTally = field(default_factory=LineTally)
    speeds: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    #: (junction, from line, to line, class) -> movements completed during the bin
    movements: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    health: set[HealthFlag] = field(default_factory=set)


class CameraPipeline:
    def __init__(self, camera: Camera, bin_seconds: int, emitter: Emitter, target_fps: float | None = None):
        self.camera = camera
        self.bin_seconds = bin_seconds
        self.emitter = emitter
        self.target_fps = target_fps
        self.tracks = TrackStore()
        self.lines = [LineCounter(line) for line in camera.lines]
        self.zones = {z.id: ZoneMonitor(z) for z in camera.zones}
        self.junctions = JunctionMovements(list(camera.junctions))
        classic, safety = split_rules(camera)
        self.rules = RuleEngine(classic)
        # Road-safety rules (collision, fallen, person down, blocked): edge/analytics/safety.py.
        self.safety = SafetyEngine(camera, safety)
        # Video clips of critical incidents: edge/evidence.py.
        self.evidence = EvidenceRecorder(camera.evidence, emitter)
        tamper_rule = next((r for r in camera.rules if isinstance(r, TamperingRule)), None)
        self.tamper = TamperCheck(tamper_rule) if tamper_rule else None
        self.ground = GroundPlane(camera.calibration) if camera.calibration else None
        self._bin: _Bin | None = None
        self.crossings_total = 0
        self.incidents_started = 0
        self.last_frame: np.ndarray[Any, Any] | None = None
        self.last_visible: list[TrackState] = []
        self.health: set[HealthFlag] = set()
        self._tamper_at = -1e18

    # ----------------------------------------------------------------------------------------------
    def process(self, image: np.ndarray[Any, Any], captured_at: datetime, dets: Detections) -> list[Crossing]:
        """Analyse one frame with its tracked detections."""
        t = captured_at.timestamp()
        current, flushed = self._roll(t)
        h, w = image.shape[:2]
        visible = self.tracks.update(dets, t, w, h)
        crossings: list[Crossing] = []
        for counter in self.lines:
            crossings += counter.update(visible, t)
        inside = {zid: zm.update(visible, t) for zid, zm in self.zones.items()}
        gone = self.tracks.expire(t)
        if gone:
            for zm in self.zones.values():
                zm.expire(gone)
            ids = {g.track_id for g in gone}
            for counter in self.lines:
                crossings += counter.forget(ids)
        self._tally(current, crossings)
        if gone:
            # After the tally: an exit settled by the track's expiry still completes its movement.
            self.junctions.forget({g.track_id for g in gone})
        known = {**self.tracks.tracks, **{g.track_id: g for g in gone}}
        health: FrameHealth | None = None
        if self.tamper is not None and t - self._tamper_at >= 0.5:
            # Tampering lasts seconds: two looks a second are enough and keep the per-frame cost low.
            self._tamper_at = t
            health = self.tamper.observe(image, t)
        fs = FrameState(t, visible, inside, self.zones, flushed + crossings, health, known)
        changes = self.rules.step(fs)
        changes += self.safety.step(fs, w, h)
        self.health = {HealthFlag(c) for c in self.rules.active_conditions()}
        current.health |= self.health
        current.frames += 1
        self.last_frame = image
        self.last_visible = visible
        self.evidence.frame(t, image, visible)
        for change in changes:
            self._incident(change, image, visible)
        return crossings

    def skip(self, image: np.ndarray[Any, Any], captured_at: datetime) -> bool:
        """A frame the motion gate judged static: it counts as analysed, the tracks stay as they were.

        Returns False (nothing done) for a frame that closes a count bin: that one must be processed,
        so the crossings settled with the bin reach the incident rules.
        """
        b = self._bin
        if b is None or captured_at.timestamp() >= b.end:
            return False
        b.frames += 1
        self.last_frame = image
        # The evidence clip keeps its frame rate through static stretches (boxes as last tracked).
        self.evidence.frame(captured_at.timestamp(), image, self.last_visible)
        return True

    def _tally(self, current: _Bin, crossings: list[Crossing]) -> None:
        for c in crossings:
            current.tally.add(c)
            if self.ground is not None:
                track = self.tracks.tracks.get(c.track_id)
                kmh = self.ground.speed_kmh(track) if track else None
                if kmh is not None and kmh < 250:
                    current.speeds.setdefault((c.line_id, c.direction, c.cls), []).append(kmh)
        for mv in self.junctions.update(crossings):
            key = (mv.junction_id, mv.from_line, mv.to_line, mv.cls)
            current.movements[key] = current.movements.get(key, 0) + 1
        self.crossings_total += len(crossings)

    def tick(self, now: datetime, health: set[HealthFlag] | None = None) -> None:
        """Advance time without a frame (stream down): closes bins so gaps show as empty, flagged bins."""
        current, _ = self._roll(now.timestamp())
        if health:
            current.health |= health

    def close(self, now: datetime) -> None:
        """Flush the partial bin and end open incidents (the worker stops)."""
        t = now.timestamp()
        for change in [*self.rules.close_all(t), *self.safety.close_all(t)]:
            self._incident(change, None, [])
        self.evidence.close()
        if self._bin is not None:
            pending: list[Crossing] = []
            for counter in self.lines:
                pending += counter.flush()
            self._tally(self._bin, pending)
            self._bin.end = max(min(self._bin.end, t), self._bin.start + 0.001)
            self._emit_bin(self._bin)
            self._bin = None

    def annotated(self) -> np.ndarray[Any, Any] | None:
        """The latest analysed frame with lines, zones and tracks drawn (for the map)."""
        if self.last_frame is None:
            return None
        return annotate(self.last_frame, self.camera, self.last_visible)

    # ----------------------------------------------------------------------------------------------
    def _roll(self, t: float) -> tuple[_Bin, list[Crossing]]:
        """The bin for time ``t``; when a bin closes, its pending crossings are settled into it."""
        b = self._bin
        if b is not None and t < b.end:
            return b, []
        pending: list[Crossing] = []
        if b is not None:
            for counter in self.lines:
                pending += counter.flush()
            self._tally(b, pending)
            self._emit_bin(b)
        aligned = math.floor(t / self.bin_seconds) * self.bin_seconds
        start = t if b is None else max(aligned, b.end)
        # Bins skipped entirely (the process was not running) are not invented; while the process runs
        # without frames, tick() keeps bins flowing with frames=0 and the stream_down flag.
        self._bin = _Bin(start=start, end=aligned + self.bin_seconds)
        return self._bin, pending

    def _emit_bin(self, b: _Bin) -> None:
        seconds = max(b.end - b.start, 1e-6)
        fps = b.frames / seconds
        health = set(b.health)
        if self.target_fps and b.frames and fps < 0.5 * self.target_fps and seconds >= 5:
            health.add(HealthFlag.LOW_FPS)
        zones = []
        for zid, zm in self.zones.items():
            frames, stats = zm.take_bin()
            for cls, st in sorted(stats.items()):
                zones.append(
                    ZoneOccupancy(
                        zone_id=zid,
                        cls=cls,
                        mean_count=round(st.frame_sum / frames, 3) if frames else 0.0,
                        max_count=st.max_count,
                        entries=st.entries,
                        mean_dwell_s=round(sum(st.dwell) / len(st.dwell), 2) if st.dwell else None,
                    )
                )
        speeds = []
        for (line_id, direction, cls), values in sorted(b.speeds.items()):
            arr = np.array(values)
            speeds.append(
                SpeedStat(
                    line_id=line_id,
                    direction=direction,
                    cls=cls,
                    n=len(values),
                    mean_kmh=round(float(arr.mean()), 1),
                    p85_kmh=round(float(np.percentile(arr, 85)), 1),
                )
            )
        self.emitter.emit(
            CountsMessage,
            "counts",
            _ts(b.end),
            bin_start=_ts(b.start),
            bin_end=_ts(b.end),
            lines=[
                DirectionCount(line_id=k[0], direction=k[1], cls=k[2], count=v)
                for k, v in sorted(b.tally.counts.items())
            ],
            zones=zones,
            speeds=speeds,
            movements=[
                Movement(junction_id=k[0], from_line=k[1], to_line=k[2], cls=k[3], count=v)
                for k, v in sorted(b.movements.items())
            ],
            frames=b.frames,
            fps=round(fps, 2),
            health=sorted(health),
        )

    def _incident(
        self, change: IncidentChange, image: np.ndarray[Any, Any] | None, visible: list[TrackState]
    ) -> None:
        ep = change.episode
        rule = change.rule
        fields: dict[str, Any] = {
            "incident_id": ep.incident_id,
            "event": _EVENTS[change.transition],
            "type": change.type,
            "severity": rule.severity,
            "rule_id": rule.id,
            "zone_id": getattr(rule, "zone", None),
            "line_id": getattr(rule, "line", None),
            "track_ids": sorted(ep.track_ids),
            "classes": sorted(ep.classes),
            "started_at": _ts(ep.started_at),
            "summary": self._summary(change),
            "details": dict(ep.details),
        }
        if ep.position is not None:
            fields["image_position"] = Point(
                x=min(max(ep.position[0], 0.0), 1.0), y=min(max(ep.position[1], 0.0), 1.0)
            )
        lat, lon = self.camera.location.lat, self.camera.location.lon
        if self.ground is not None and ep.position is not None:
            lat, lon = self.ground.to_latlon(*ep.position)
        fields["latitude"], fields["longitude"] = lat, lon
        when = _ts(ep.started_at)
        if change.transition is Transition.END:
            fields["ended_at"] = _ts(ep.ended_at)
            when = _ts(ep.ended_at)
        elif change.transition is Transition.START:
            self.incidents_started += 1
            if _RANK[rule.severity] >= _RANK[self.camera.evidence.min_severity]:
                self.evidence.start(ep.incident_id, set(ep.track_ids), ep.started_at)
            if image is not None:
                fields["snapshot"] = snapshot(annotate(image, self.camera, visible, set(ep.track_ids)))
            log.info(
                "camera %s: incident %s started (%s)", self.camera.id, change.type.value, fields["summary"]
            )
        else:
            when = _ts(ep.last_true)
        self.emitter.emit(IncidentMessage, "incident", when, **fields)

    @staticmethod
    def _summary(change: IncidentChange) -> str:
        ep = change.episode
        what = ", ".join(f"{c}" for c in sorted(ep.classes)) or "scene"
        ids = ", ".join(f"#{i}" for i in sorted(ep.track_ids))
        kind = change.type.value.replace("_", " ")
        where = getattr(change.rule, "zone", None) or getattr(change.rule, "line", None)
        text = f"{kind}: {what} {ids}".strip()
        if where:
            text += f" at {where}"
        if "direction" in ep.details:
            text += f" going {ep.details['direction']}"
        if "condition" in ep.details:
            text += f" ({ep.details['condition']})"
        return text[:500]
