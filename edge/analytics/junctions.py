"""Turning movements: pair each object's entry crossing of a junction with its later exit crossing.

The rule, per object and junction: a crossing of an entry line is remembered (a later entry crossing
replaces it); a later crossing of an exit line that is not that same crossing event completes one
movement (entry line -> exit line, the object's class at the exit). An object counts at most one
movement per junction. A line that is both entry and exit (a two-way approach) is an exit when the
object already entered by another crossing, otherwise an entry. State is dropped when tracks expire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from citywatch.site import Junction
from edge.analytics.lines import Crossing


@dataclass(frozen=True, slots=True)
class MovementEvent:
    junction_id: str
    from_line: str
    to_line: str
    track_id: int
    cls: str
    t: float  # time of the exit crossing


@dataclass(slots=True)
class _Entry:
    line_id: str
    t: float


@dataclass(slots=True)
class JunctionMovements:
    """Per-track entry state of one camera's junctions; :meth:`update` turns crossings into movements."""

    junctions: list[Junction]
    _entered: dict[tuple[int, str], _Entry] = field(default_factory=dict)
    _done: set[tuple[int, str]] = field(default_factory=set)

    def update(self, crossings: list[Crossing]) -> list[MovementEvent]:
        """Feed settled crossings (any order within the batch); return the movements they complete."""
        out: list[MovementEvent] = []
        if not self.junctions:
            return out
        # Crossings settle a few frames late and a bin close flushes all lines at once: go by crossing time.
        for c in sorted(crossings, key=lambda c: c.t):
            for j in self.junctions:
                key = (c.track_id, j.id)
                if key in self._done:
                    continue
                entry = self._entered.get(key)
                if c.line_id in j.exits and entry is not None and entry.t <= c.t:
                    # LineCounter yields each (track, line) once, so a different Crossing is a
                    # different crossing event even when the exit line is the entry line.
                    del self._entered[key]
                    self._done.add(key)
                    out.append(MovementEvent(j.id, entry.line_id, c.line_id, c.track_id, c.cls, c.t))
                elif c.line_id in j.entries:
                    self._entered[key] = _Entry(c.line_id, c.t)
        return out

    def forget(self, track_ids: set[int]) -> None:
        """Tracks that expired: drop their entries and their done marks."""
        if not track_ids:
            return
        self._entered = {k: v for k, v in self._entered.items() if k[0] not in track_ids}
        self._done = {k for k in self._done if k[0] not in track_ids}

    @property
    def open_entries(self) -> int:
        """Objects that entered a junction and have not left it yet (for diagnostics and tests)."""
        return len(self._entered)
