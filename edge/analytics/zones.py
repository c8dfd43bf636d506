"""Zone occupancy: who is inside each polygon, entries, dwell times, per-bin statistics by class."""

from __future__ import annotations

from dataclasses import dataclass, field

from citywatch.geometry import point_in_polygon
from citywatch.site import Zone
from edge.analytics.tracks import TrackState


@dataclass(slots=True)
class _ClassStats:
    frame_sum: int = 0
    max_count: int = 0
    entries: int = 0
    dwell: list[float] = field(default_factory=list)


class ZoneMonitor:
    """Occupancy of one zone; ``update`` once per analysed frame with the visible tracks."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.polygon = [tuple(p) for p in zone.polygon]
        self.classes = set(zone.classes) if zone.classes else None
        self.inside: dict[int, tuple[float, str]] = {}  # track id -> (entered at, class)
        self._stats: dict[str, _ClassStats] = {}
        self._frames = 0

    def contains(self, track: TrackState) -> bool:
        if track.is_rider or (self.classes is not None and track.cls not in self.classes):
            return False
        return point_in_polygon(track.anchor, self.polygon)  # type: ignore[arg-type]

    def update(self, tracks: list[TrackState], t: float) -> list[TrackState]:
        """Apply a frame; return the tracks inside the zone now."""
        self._frames += 1
        now_inside = [tr for tr in tracks if self.contains(tr)]
        ids = {tr.track_id for tr in now_inside}
        visible = {tr.track_id for tr in tracks}
        for tr in now_inside:
            if tr.track_id not in self.inside:
                self.inside[tr.track_id] = (t, tr.cls)
                self._cls(tr.cls).entries += 1
        # A visible track outside the zone has left it; an invisible one leaves when it expires.
        for tid in [tid for tid in self.inside if tid in visible and tid not in ids]:
            self._leave(tid, t)
        per_class: dict[str, int] = {}
        for tr in now_inside:
            per_class[tr.cls] = per_class.get(tr.cls, 0) + 1
        for cls, n in per_class.items():
            st = self._cls(cls)
            st.frame_sum += n
            st.max_count = max(st.max_count, n)
        return now_inside

    def expire(self, gone: list[TrackState]) -> None:
        for tr in gone:
            if tr.track_id in self.inside:
                self._leave(tr.track_id, tr.last_seen)

    def dwell_of(self, track_id: int, t: float) -> float:
        entered = self.inside.get(track_id)
        return 0.0 if entered is None else t - entered[0]

    def take_bin(self) -> tuple[int, dict[str, _ClassStats]]:
        """Return (frames, stats by class) for the bin just ended and start a new one."""
        frames, stats = self._frames, self._stats
        self._frames, self._stats = 0, {}
        return frames, stats

    def _leave(self, tid: int, t: float) -> None:
        entered, cls = self.inside.pop(tid)
        self._cls(cls).dwell.append(max(0.0, t - entered))

    def _cls(self, cls: str) -> _ClassStats:
        st = self._stats.get(cls)
        if st is None:
            st = self._stats[cls] = _ClassStats()
        return st
