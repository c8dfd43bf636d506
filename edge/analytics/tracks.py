"""Track history per camera: anchors over time, class by vote, riders, and id-switch stitching.

ByteTrack sometimes gives an object a new id mid-crossing (occlusion, a missed frame, or a few frames
not detected at all while the detector is shared by many cameras). A new id that appears close to where
a recently lost track is predicted to be by now, with a compatible class, continues that track: line
and zone state stay with the object, so it is counted once. The prediction coasts the lost track at its
recent velocity (the constant-velocity model of a Kalman tracker, fitted over its last second of
positions), so an object that crossed a line while undetected is still one object on both sides.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edge.detections import Detections

TWO_WHEELERS = frozenset({"bicycle", "motorcycle"})
VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle"})


def _group(state_or_cls: TrackState | str) -> str:
    if isinstance(state_or_cls, TrackState):
        return "vehicle" if state_or_cls.is_rider else _group(state_or_cls.cls)
    cls = state_or_cls
    return "person" if cls == "person" else "vehicle" if cls in VEHICLES else cls


@dataclass(slots=True)
class TrackState:
    track_id: int  # canonical id: the first raw tracker id of this object
    first_seen: float  # seconds (frame time)
    last_seen: float
    anchors: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=90))  # t, x, y
    class_votes: Counter[str] = field(default_factory=Counter)
    rider_votes: int = 0
    partners: Counter[int] = field(default_factory=Counter)  # tracks seen overlapping as rider/bike
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # normalized xyxy
    raw_ids: set[int] = field(default_factory=set)

    @property
    def cls(self) -> str:
        return self.class_votes.most_common(1)[0][0] if self.class_votes else "unknown"

    @property
    def is_rider(self) -> bool:
        """A person on a bicycle or motorcycle (not a pedestrian).

        Either the person sat on a two-wheeler box in at least a quarter of its frames, or it moves
        faster than a person can walk: over two of its own heights per second (a pedestrian makes
        under one; a moped seen from behind often hides the bike under its rider).
        """
        seen = sum(self.class_votes.values())
        if self.cls != "person" or seen == 0:
            return False
        if self.rider_votes * 4 >= seen:
            return True
        motion = self.motion(1.0)
        height = self.box[3] - self.box[1]
        return motion is not None and height > 0 and motion / height > 2.0

    partner_classes: Counter[str] = field(default_factory=Counter)

    @property
    def count_class(self) -> str:
        """The class a crossing of this track counts as: a rider counts as their vehicle."""
        if not self.is_rider:
            return self.cls
        return self.partner_classes.most_common(1)[0][0] if self.partner_classes else "motorcycle"

    @property
    def anchor(self) -> tuple[float, float]:
        _, x, y = self.anchors[-1]
        return x, y

    @property
    def age(self) -> float:
        return self.last_seen - self.first_seen

    def velocity(self, window: float = 1.0) -> tuple[float, float] | None:
        """Least-squares velocity (normalized units per second) over the last ``window`` seconds."""
        t_end = self.anchors[-1][0] if self.anchors else 0.0
        recent = [a for a in self.anchors if t_end - a[0] <= window]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < 0.05:
            return None
        arr = np.array(recent, dtype=np.float64)
        dt = arr[:, 0] - arr[:, 0].mean()
        denom = float((dt * dt).sum())
        return float((dt * (arr[:, 1] - arr[:, 1].mean())).sum() / denom), float(
            (dt * (arr[:, 2] - arr[:, 2].mean())).sum() / denom
        )

    def predicted_anchor(self, t: float, horizon: float) -> tuple[float, float]:
        """Where the object should be at ``t``, coasting at its recent velocity for at most ``horizon`` s."""
        x, y = self.anchor
        v = self.velocity()
        if v is None:
            return x, y
        dt = min(max(t - self.last_seen, 0.0), horizon)
        return x + v[0] * dt, y + v[1] * dt

    def motion(self, window: float = 2.0) -> float | None:
        """Displacement per second (normalized units) over the last ``window`` seconds, if known."""
        if len(self.anchors) < 2:
            return None
        t1, x1, y1 = self.anchors[-1]
        for t0, x0, y0 in reversed(self.anchors):
            if t1 - t0 >= window:
                return math.hypot(x1 - x0, y1 - y0) / (t1 - t0)
        t0, x0, y0 = self.anchors[0]
        if t1 - t0 < window / 2:
            return None
        return math.hypot(x1 - x0, y1 - y0) / (t1 - t0)


def rider_partners(dets: Detections) -> np.ndarray:
    """For each person box that sits on a bicycle or motorcycle box, that box's index; else -1."""
    n = len(dets)
    mask = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return mask
    names = [dets.class_name(i) for i in range(n)]
    bikes = [i for i in range(n) if names[i] in TWO_WHEELERS]
    if not bikes:
        return mask
    for i in range(n):
        if names[i] != "person":
            continue
        px0, py0, px1, py1 = dets.xyxy[i]
        parea = max((px1 - px0) * (py1 - py0), 1e-6)
        for j in bikes:
            bx0, by0, bx1, by1 = dets.xyxy[j]
            iw = max(0.0, min(px1, bx1) - max(px0, bx0))
            ih = max(0.0, min(py1, by1) - max(py0, by0))
            # The rider overlaps the bike and their feet are within the bike's height.
            if iw * ih / parea > 0.15 and by0 <= py1 <= by1 + 0.25 * (by1 - by0):
                mask[i] = j
                break
    return mask


class TrackStore:
    """Canonical tracks of one camera, updated once per analysed frame."""

    def __init__(
        self,
        stitch_seconds: float = 1.0,
        stitch_distance: float = 0.06,
        expire_seconds: float = 5.0,
        coast_seconds: float = 2.0,
    ):
        self.stitch_seconds = stitch_seconds
        #: A lost track that was moving is coasted (and can be continued) for this long.
        self.coast_seconds = coast_seconds
        self.stitch_distance = stitch_distance
        self.expire_seconds = expire_seconds
        self.tracks: dict[int, TrackState] = {}
        self._raw_to_canonical: dict[int, int] = {}
        self.stitched = 0

    def update(self, dets: Detections, t: float, width: int, height: int) -> list[TrackState]:
        """Apply one frame; return the tracks visible in it. Untracked boxes are ignored."""
        anchors = dets.anchors(width, height)
        partners = rider_partners(dets)
        visible: list[TrackState] = []
        seen_now: set[int] = set()
        canonical_of: dict[int, int] = {}
        for i in range(len(dets)):
            raw = int(dets.tracker_id[i])
            if raw < 0:
                continue
            cls = dets.class_name(i)
            x, y = float(anchors[i, 0]), float(anchors[i, 1])
            canonical = self._raw_to_canonical.get(raw)
            if canonical is None or canonical not in self.tracks:
                canonical = self._stitch(cls, x, y, t, seen_now) or raw
                self._raw_to_canonical[raw] = canonical
            canonical_of[i] = canonical
            state = self.tracks.get(canonical)
            if state is None:
                state = TrackState(track_id=canonical, first_seen=t, last_seen=t)
                self.tracks[canonical] = state
            if canonical in seen_now:
                continue  # two raw ids mapped to one object in the same frame: keep the first
            seen_now.add(canonical)
            state.raw_ids.add(raw)
            state.last_seen = t
            state.anchors.append((t, x, y))
            state.class_votes[cls] += 1
            state.rider_votes += int(partners[i] >= 0)
            x0, y0, x1, y1 = dets.xyxy[i]
            state.box = (x0 / width, y0 / height, x1 / width, y1 / height)
            visible.append(state)
        for i in range(len(dets)):
            j = int(partners[i])
            if j >= 0 and i in canonical_of and j in canonical_of:
                a, b = canonical_of[i], canonical_of[j]
                self.tracks[a].partners[b] += 1
                self.tracks[b].partners[a] += 1
                self.tracks[a].partner_classes[dets.class_name(j)] += 1
        return visible

    def expire(self, t: float) -> list[TrackState]:
        """Drop tracks unseen for ``expire_seconds``; return them (their zone dwell ends)."""
        gone = [s for s in self.tracks.values() if t - s.last_seen > self.expire_seconds]
        for s in gone:
            del self.tracks[s.track_id]
        if gone:
            dead = {s.track_id for s in gone}
            self._raw_to_canonical = {r: c for r, c in self._raw_to_canonical.items() if c not in dead}
        return gone

    def _stitch(self, cls: str, x: float, y: float, t: float, seen_now: set[int]) -> int | None:
        best, best_d = None, math.inf
        for state in self.tracks.values():
            if state.track_id in seen_now or state.last_seen >= t:
                continue
            gap = t - state.last_seen
            moving = state.velocity() is not None
            if gap > (self.coast_seconds if moving else self.stitch_seconds) or _group(state) != _group(cls):
                continue
            px, py = state.predicted_anchor(t, self.coast_seconds)
            lx, ly = state.anchor
            # The prediction is less sure the further it coasted: allow a quarter of the coasted distance.
            reach = self.stitch_distance + 0.25 * math.hypot(px - lx, py - ly)
            d = math.hypot(px - x, py - y)
            if d < reach and d < best_d:
                best, best_d = state.track_id, d
        if best is not None:
            self.stitched += 1
        return best
