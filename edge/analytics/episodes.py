"""Turn per-frame conditions into incidents: one incident per event, not one per frame.

A condition must hold for ``min_seconds`` (gaps shorter than ``end_after_s`` are bridged, so one missed
detection does not restart the clock) before the incident starts; it ends when the condition has been
absent for ``end_after_s``; after that the same key is quiet for ``cooldown_s``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum


class Transition(Enum):
    START = "start"
    UPDATE = "update"
    END = "end"


@dataclass(slots=True)
class Episode:
    key: str
    since: float
    last_true: float
    incident_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: bool = False
    started_at: float = 0.0
    ended_at: float = 0.0
    track_ids: set[int] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    position: tuple[float, float] | None = None
    peak: float = 0.0  # the largest measured value (people, vehicles, seconds) while active
    details: dict[str, float | int | str | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """The condition holds for ``key`` in this frame, with what is involved."""

    key: str
    track_ids: frozenset[int] = frozenset()
    classes: frozenset[str] = frozenset()
    position: tuple[float, float] | None = None
    value: float = 0.0
    details: dict[str, float | int | str | bool] = field(default_factory=dict)


class EpisodeTracker:
    def __init__(self, min_seconds: float, end_after_s: float, cooldown_s: float) -> None:
        self.min_seconds = min_seconds
        self.end_after_s = end_after_s
        self.cooldown_s = cooldown_s
        self.episodes: dict[str, Episode] = {}
        self._ended: dict[str, float] = {}

    def step(self, t: float, observations: list[Observation]) -> list[tuple[Transition, Episode]]:
        out: list[tuple[Transition, Episode]] = []
        seen = set()
        for ob in observations:
            seen.add(ob.key)
            ep = self.episodes.get(ob.key)
            if ep is None:
                if t - self._ended.get(ob.key, -1e18) < self.cooldown_s:
                    continue
                ep = self.episodes[ob.key] = Episode(ob.key, since=t, last_true=t)
            ep.last_true = t
            grew = not ob.track_ids <= ep.track_ids
            ep.track_ids |= ob.track_ids
            ep.classes |= ob.classes
            ep.position = ob.position or ep.position
            ep.peak = max(ep.peak, ob.value)
            ep.details.update(ob.details)
            if not ep.started and t - ep.since >= self.min_seconds:
                ep.started = True
                ep.started_at = t
                out.append((Transition.START, ep))
            elif ep.started and grew:
                out.append((Transition.UPDATE, ep))
        for key in [k for k in self.episodes if k not in seen]:
            ep = self.episodes[key]
            if t - ep.last_true < self.end_after_s:
                continue
            del self.episodes[key]
            if ep.started:
                ep.ended_at = ep.last_true
                self._ended[key] = t
                out.append((Transition.END, ep))
        return out

    def close_all(self, t: float) -> list[tuple[Transition, Episode]]:
        """End every started incident (the worker stops)."""
        out = []
        for ep in self.episodes.values():
            if ep.started:
                ep.ended_at = min(ep.last_true, t)
                out.append((Transition.END, ep))
        self.episodes.clear()
        return out
