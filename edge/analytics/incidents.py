"""Incident rules from the site config, evaluated once per frame over the analytics state.

Each rule turns the frame into :class:`Observation` s (a condition holding for a key: a track or a
zone); an :class:`EpisodeTracker` per rule turns those into start / update / end transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from citywatch.site import (
    CongestionRule,
    CrowdingRule,
    IntrusionRule,
    LoiteringRule,
    Rule,
    StoppedVehicleRule,
    TamperingRule,
    WrongWayRule,
)
from contract.messages import IncidentType
from edge.analytics.episodes import Episode, EpisodeTracker, Observation, Transition
from edge.analytics.lines import Crossing
from edge.analytics.tampering import FrameHealth
from edge.analytics.tracks import TrackState
from edge.analytics.zones import ZoneMonitor


@dataclass(frozen=True, slots=True)
class FrameState:
    t: float
    visible: list[TrackState]
    inside: dict[str, list[TrackState]]  # zone id -> tracks inside now
    zones: dict[str, ZoneMonitor]
    crossings: list[Crossing]
    health: FrameHealth | None
    tracks: dict[int, TrackState]  # every live track, visible or briefly lost


@dataclass(frozen=True, slots=True)
class IncidentChange:
    rule: Rule
    type: IncidentType
    transition: Transition
    episode: Episode


def _centre(tracks: list[TrackState]) -> tuple[float, float] | None:
    if not tracks:
        return None
    return (sum(t.anchor[0] for t in tracks) / len(tracks), sum(t.anchor[1] for t in tracks) / len(tracks))


def _obs(
    key: str, tracks: list[TrackState], value: float = 0.0, **details: float | int | str | bool
) -> Observation:
    return Observation(
        key=key,
        track_ids=frozenset(t.track_id for t in tracks),
        classes=frozenset(t.cls for t in tracks),
        position=_centre(tracks),
        value=value,
        details=dict(details),
    )


def _steady(track: TrackState, min_age: float = 1.0, min_travel: float = 0.08) -> bool:
    """A wrong-way crossing is believed only from a track that has been followed for a while and moved
    steadily across the line: an id that hopped from one vehicle to the next, or a box that flickered
    (a screen overlay read as a car), crosses in one jump and is no wrong-way driver."""
    if track.age < min_age or len(track.anchors) < 4:
        return False
    _, x0, y0 = track.anchors[0]
    _, x1, y1 = track.anchors[-1]
    dist = math.hypot(x1 - x0, y1 - y0)
    if dist < min_travel:
        return False
    steps = [
        math.hypot(b[1] - a[1], b[2] - a[2])
        for a, b in zip(track.anchors, list(track.anchors)[1:], strict=False)
    ]
    return max(steps) < 0.5 * dist  # no single jump carries most of the way


def _observe(rule: Rule, fs: FrameState) -> list[Observation]:
    if isinstance(rule, WrongWayRule):
        out = []
        for c in fs.crossings:
            if c.line_id == rule.line and c.direction != rule.expected and c.cls in rule.classes:
                track = fs.tracks.get(c.track_id)
                if track is not None and _steady(track):
                    out.append(_obs(f"track-{c.track_id}", [track], direction=c.direction))
        # A wrong-way episode stays open while its track is still in view.
        return out

    if isinstance(rule, StoppedVehicleRule):
        pool = fs.inside.get(rule.zone, []) if rule.zone else fs.visible
        out = []
        for tr in pool:
            if tr.cls not in rule.classes or tr.age < 2.0:
                continue
            motion = tr.motion()
            if motion is not None and motion < rule.max_motion:
                out.append(_obs(f"track-{tr.track_id}", [tr], tr.age, motion=round(motion, 4)))
        return out

    if isinstance(rule, CongestionRule):
        vehicles = [t for t in fs.inside.get(rule.zone, []) if t.cls in rule.classes]
        motions = [m for m in (t.motion() for t in vehicles) if m is not None]
        if len(vehicles) >= rule.min_vehicles and motions and sum(motions) / len(motions) <= rule.max_motion:
            return [
                _obs(rule.zone, vehicles, len(vehicles), mean_motion=round(sum(motions) / len(motions), 4))
            ]
        return []

    if isinstance(rule, IntrusionRule):
        intruders = [t for t in fs.inside.get(rule.zone, []) if t.cls in rule.classes]
        return [_obs(rule.zone, intruders, len(intruders))] if intruders else []

    if isinstance(rule, LoiteringRule):
        zone = fs.zones[rule.zone]
        return [
            _obs(f"track-{t.track_id}", [t], zone.dwell_of(t.track_id, fs.t))
            for t in fs.inside.get(rule.zone, [])
            if t.cls in rule.classes
        ]

    if isinstance(rule, CrowdingRule):
        people = [t for t in fs.inside.get(rule.zone, []) if t.cls == "person"]
        return [_obs(rule.zone, people, len(people))] if len(people) >= rule.min_people else []

    if isinstance(rule, TamperingRule):
        h = fs.health
        if h is None:
            return []
        out = []
        if h.frozen_s >= rule.frozen_seconds:
            out.append(Observation("frozen", details={"condition": "frozen"}))
        for name, flag in (("black", h.black), ("blurred", h.blurred), ("moved", h.moved)):
            if flag:
                out.append(Observation(name, details={"condition": name}))
        return out
    raise TypeError(f"unknown rule {rule!r}")  # pragma: no cover


def _min_seconds(rule: Rule) -> float:
    return 0.0 if isinstance(rule, WrongWayRule) else rule.min_seconds


_TYPES = {
    StoppedVehicleRule: IncidentType.STOPPED_VEHICLE,
    WrongWayRule: IncidentType.WRONG_WAY,
    CongestionRule: IncidentType.CONGESTION,
    IntrusionRule: IncidentType.INTRUSION,
    LoiteringRule: IncidentType.LOITERING,
    CrowdingRule: IncidentType.CROWDING,
    TamperingRule: IncidentType.TAMPERING,
}


class RuleEngine:
    """All incident rules of one camera."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._trackers = {r.id: EpisodeTracker(_min_seconds(r), r.end_after_s, r.cooldown_s) for r in rules}

    def step(self, fs: FrameState) -> list[IncidentChange]:
        out = []
        visible = {t.track_id for t in fs.visible}
        for rule in self.rules:
            observations = _observe(rule, fs)
            tracker = self._trackers[rule.id]
            if isinstance(rule, WrongWayRule):
                # Keep the episode alive while the offending track is still visible.
                for ep in tracker.episodes.values():
                    if ep.track_ids & visible and all(o.key != ep.key for o in observations):
                        observations.append(Observation(ep.key))
            for transition, episode in tracker.step(fs.t, observations):
                out.append(IncidentChange(rule, _TYPES[type(rule)], transition, episode))
        return out

    def active_conditions(self) -> set[str]:
        """Tampering conditions with a started incident (health flags)."""
        out: set[str] = set()
        for rule in self.rules:
            if isinstance(rule, TamperingRule):
                out |= {k for k, ep in self._trackers[rule.id].episodes.items() if ep.started}
        return out

    def close_all(self, t: float) -> list[IncidentChange]:
        out = []
        for rule in self.rules:
            for transition, episode in self._trackers[rule.id].close_all(t):
                out.append(IncidentChange(rule, _TYPES[type(rule)], transition, episode))
        return out
