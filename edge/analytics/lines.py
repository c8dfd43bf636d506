"""Line crossing counts with hysteresis, once per object and line.

A track takes a side of the line only when its anchor (bottom centre of the box) is at least
``min_travel`` away from it; a crossing happens when the confident side flips *and* the path between
the two confident positions passes through the drawn line. So jitter on the line, stop-and-go at a
stop line and large jumps between skipped frames all count exactly once, and a path that passes beside
the end of a short line does not count.

A crossing is settled a few frames later (``settle_frames``), or when the track is lost or the count
bin closes, whichever comes first: by then the track's class vote has more evidence (a van seen as a
truck for two frames is still a car), and a box that jumped across the line and back (a momentary
mix-up of two tracks) is not a crossing. A rider and their two-wheeler are one object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from citywatch.geometry import PointT, cross, segments_intersect
from citywatch.site import CountingLine
from edge.analytics.tracks import TrackState


@dataclass(frozen=True, slots=True)
class Crossing:
    line_id: str
    direction: str
    positive: bool  # True: crossed to the right-hand side of the line as drawn
    track_id: int
    cls: str
    t: float
    point: PointT  # where the path met the line (approximately)


@dataclass(slots=True)
class _Pending:
    positive: bool
    point: PointT
    t: float
    votes: int


@dataclass(slots=True)
class _TrackLineState:
    track: TrackState
    side: int  # -1 / +1 once confident
    last_confident: PointT
    counted: bool = False
    pending: _Pending | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _signed_distance(segments: list[tuple[PointT, PointT]], p: PointT) -> float:
    """Signed distance to the nearest segment (sign: side of the polyline there)."""
    best = math.inf
    nearest, at = 0, 0.0
    for i, (a, b) in enumerate(segments):
        ax, ay = a
        bx, by = b
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        # length2 underflows to 0 for distinct points closer than ~1e-154 (the config allows them).
        u = max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2)) if length2 else 0.0
        d = math.hypot(p[0] - (ax + u * dx), p[1] - (ay + u * dy))
        if d < best:
            best, nearest, at = d, i, u
    s = cross(*segments[nearest], p)
    # Nearest to a vertex between two segments: past a bend sharper than a right angle, one segment's
    # line puts p on the wrong side. Where the two disagree, p is on the outer side of the bend.
    other = nearest + 1 if at == 1.0 else nearest - 1 if at == 0.0 else -1
    if 0 <= other < len(segments):
        first, second = segments[min(nearest, other)], segments[max(nearest, other)]
        s1, s2 = cross(*first, p), cross(*second, p)
        turn = cross(first[0], first[1], second[1])
        if not ((s1 > 0 and s2 > 0) or (s1 < 0 and s2 < 0)) and turn != 0:
            s = -turn
    return best if s > 0 else -best if s < 0 else 0.0


class LineCounter:
    """Counts crossings of one (poly)line."""

    def __init__(self, line: CountingLine, settle_frames: int = 8) -> None:
        self.line = line
        self.segments: list[tuple[PointT, PointT]] = [
            ((line.points[i][0], line.points[i][1]), (line.points[i + 1][0], line.points[i + 1][1]))
            for i in range(len(line.points) - 1)
        ]
        self.band = line.min_travel
        self.classes = set(line.classes) if line.classes else None
        self.settle_frames = settle_frames
        self._state: dict[int, _TrackLineState] = {}

    def update(self, tracks: list[TrackState], t: float) -> list[Crossing]:
        """Apply one frame's visible tracks; return the crossings settled now."""
        for track in tracks:
            p = track.anchor
            d = _signed_distance(self.segments, p)
            if abs(d) < self.band or d == 0:
                continue  # on the line (even with no band) a track takes no side
            side = 1 if d > 0 else -1
            st = self._state.get(track.track_id)
            if st is None:
                self._state[track.track_id] = _TrackLineState(track, side, p)
                continue
            if side != st.side:
                hit = self._hit(st.last_confident, p)
                if hit is not None and not st.counted and st.pending is None:
                    st.pending = _Pending(side > 0, hit, t, sum(track.class_votes.values()))
                st.side = side
            st.last_confident = p
        out = []
        for st in self._state.values():
            pend = st.pending
            if pend is None:
                continue
            seen_since = sum(st.track.class_votes.values()) - pend.votes
            if seen_since >= self.settle_frames or t - st.track.last_seen > 0.5:
                out += self._settle(st)
        return out

    def flush(self, track_ids: set[int] | None = None) -> list[Crossing]:
        """Settle pending crossings now (all, or of these tracks): bin close, lost tracks."""
        out = []
        for tid, st in self._state.items():
            if st.pending is not None and (track_ids is None or tid in track_ids):
                out += self._settle(st)
        return out

    def forget(self, track_ids: set[int]) -> list[Crossing]:
        """Tracks that expired: settle what they had pending, then drop their state."""
        out = self.flush(track_ids)
        for tid in track_ids:
            self._state.pop(tid, None)
        return out

    def _settle(self, st: _TrackLineState) -> list[Crossing]:
        pend = st.pending
        assert pend is not None
        st.pending = None
        if st.side != (1 if pend.positive else -1):
            return []  # it went back: a box that jumped across the line for a moment, not a crossing
        cls = st.track.count_class
        if self.classes is not None and cls not in self.classes:
            return []
        st.counted = True
        if self._partner_counted(st.track):
            return []  # the rider and their two-wheeler are one object: counted once
        names = self.line.directions
        crossing = Crossing(
            self.line.id,
            names.positive if pend.positive else names.negative,
            pend.positive,
            st.track.track_id,
            cls,
            pend.t,
            pend.point,
        )
        return [crossing]

    def _partner_counted(self, track: TrackState) -> bool:
        for partner, votes in track.partners.items():
            st = self._state.get(partner)
            if votes >= 2 and st is not None and st.counted:
                return True
        return False

    def _hit(self, p0: PointT, p1: PointT) -> PointT | None:
        for a, b in self.segments:
            if segments_intersect(p0, p1, a, b):
                return ((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2)
        return None


@dataclass(slots=True)
class LineTally:
    """Crossings by (line, direction, class) during a bin."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(self, c: Crossing) -> None:
        key = (c.line_id, c.direction, c.cls)
        self.counts[key] = self.counts.get(key, 0) + 1
