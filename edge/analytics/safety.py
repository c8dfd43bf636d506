"""Road-safety incident rules: collision, vehicle fallen, person down, road blocked.

They read only what the edge already has: each visible track's box over time. Speeds are measured in
the track's own box heights per second, so one threshold holds near and far from the camera, and
shapes in pixel width/height. The rules (how each decides: docs/edge.md, "Road safety"):

- collision: two road users' boxes meet while one of them moves fast; within a second the meeting is
  *disrupted* (the fast one loses most of its speed at once, or one of the two vanishes or swaps its
  class, as a bike thrown down does); then the survivor comes to rest and stays. A queue at a red
  light also decelerates and stops, but smoothly, over seconds, and nothing vanishes at the contact.
- vehicle_fallen: a vehicle's box turns from its own upright shape to a wide, flat one and stays.
- person_down: a person box wide and low (height/width under ~0.9), nearly still, for seconds.
- road_blocked: vehicles involved in a collision (or fallen) stay on the road.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

from citywatch.site import Camera, Rule
from citywatch.site_safety import (
    CollisionRule,
    PersonDownRule,
    RoadBlockedRule,
    SafetyRule,
    VehicleFallenRule,
)
from contract.messages import IncidentType
from edge.analytics.episodes import EpisodeTracker, Observation
from edge.analytics.incidents import FrameState, IncidentChange
from edge.analytics.tracks import TrackState

log = logging.getLogger(__name__)
Box = tuple[float, float, float, float]  # pixels xyxy
HISTORY_S = 8.0

TYPES: dict[type, IncidentType] = {
    CollisionRule: IncidentType.COLLISION,
    VehicleFallenRule: IncidentType.VEHICLE_FALLEN,
    PersonDownRule: IncidentType.PERSON_DOWN,
    RoadBlockedRule: IncidentType.ROAD_BLOCKED,
}


def split_rules(camera: Camera) -> tuple[list[Rule], list[SafetyRule]]:
    """The camera's effective rules: the classic ones, and the road-safety ones for :class:`SafetyEngine`."""
    classic: list[Rule] = []
    safety: list[SafetyRule] = []
    for rule in camera.effective_rules():
        if isinstance(rule, CollisionRule | VehicleFallenRule | PersonDownRule | RoadBlockedRule):
            safety.append(rule)
        else:
            classic.append(rule)
    return classic, safety


def _inside(poly: list[tuple[float, float]], x: float, y: float) -> bool:
    hit = False
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            hit = not hit
    return hit


@dataclass(slots=True)
class History:
    """One track's boxes (pixels) over the last seconds, with its class per sample."""

    track_id: int
    samples: deque[tuple[float, Box, str]] = field(default_factory=deque)
    first_seen: float = 0.0
    #: slow average of width/height (about 2 s): a cheap first test before the exact median
    slow_aspect: float = 0.0
    _speeds: dict[tuple[float, float], float | None] = field(default_factory=dict)

    def add(self, t: float, box: Box, cls: str) -> None:
        aspect = (box[2] - box[0]) / max(box[3] - box[1], 1.0)
        if not self.samples:
            self.first_seen = t
            self.slow_aspect = aspect
        else:
            k = min(1.0, (t - self.samples[-1][0]) / 2.0)
            self.slow_aspect += k * (aspect - self.slow_aspect)
        self.samples.append((t, box, cls))
        self._speeds.clear()
        while self.samples and t - self.samples[0][0] > HISTORY_S:
            self.samples.popleft()

    @property
    def last_t(self) -> float:
        return self.samples[-1][0]

    @property
    def box(self) -> Box:
        return self.samples[-1][1]

    def window(self, t0: float, t1: float) -> list[tuple[float, Box, str]]:
        out = []
        for s in reversed(self.samples):  # newest first: recent windows stop early
            if s[0] < t0:
                break
            if s[0] <= t1:
                out.append(s)
        out.reverse()
        return out

    def speed(self, t0: float, t1: float) -> float | None:
        """Centre displacement per second between ``t0`` and ``t1``, in the track's box heights."""
        key = (t0, t1)
        if key not in self._speeds:
            self._speeds[key] = self._speed(t0, t1)
        return self._speeds[key]

    def _speed(self, t0: float, t1: float) -> float | None:
        win = self.window(t0, t1)
        if len(win) < 2 or win[-1][0] - win[0][0] < 0.5 * (t1 - t0):
            return None
        (ta, a, _), (tb, b, _) = win[0], win[-1]
        height = statistics.median(s[1][3] - s[1][1] for s in win)
        dist = math.hypot((b[0] + b[2] - a[0] - a[2]) / 2, (b[1] + b[3] - a[1] - a[3]) / 2)
        return dist / max(height, 1.0) / max(tb - ta, 1e-6)

    def aspect(self, box: Box | None = None) -> float:
        """Width / height in pixels."""
        x0, y0, x1, y1 = box or self.box
        return (x1 - x0) / max(y1 - y0, 1.0)


def _area(a: Box) -> float:
    return max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _gap(a: Box, b: Box) -> float:
    """Distance between two boxes in pixels (0 when they overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(dx, dy)


@dataclass(slots=True)
class Contact:
    """Two tracks met while ``fast`` moved at ``speed`` box heights per second."""

    t: float
    fast: int
    other: int
    speed: float
    disrupted_at: float | None = None
    how: str = ""
    position: tuple[float, float] = (0.0, 0.0)
    classes: frozenset[str] = frozenset()
    reach: float = 0.0  # the larger party's box height (pixels)
    moving: dict[int, float] = field(default_factory=dict)  # party -> speed at the contact
    boxes: dict[int, Box] = field(default_factory=dict)  # party -> its last box seen


class SafetyEngine:
    """The road-safety rules of one camera. :meth:`step` once per analysed frame."""

    def __init__(self, camera: Camera, rules: list[SafetyRule]) -> None:
        self.camera = camera
        self.rules = rules
        self.hist: dict[int, History] = {}
        self.contacts: dict[tuple[int, int], Contact] = {}
        self.crashed: dict[int, float] = {}  # track id -> when it was in a confirmed crash or fell
        self.fallen_at: dict[int, float] = {}  # vehicle track id -> when it was seen fallen
        self.sites: list[tuple[float, float, float, float]] = []  # raised crashes: t, x, y, reach (px)
        self._upright: dict[int, float] = {}  # track id -> median upright aspect of a vehicle
        self._trackers = {r.id: EpisodeTracker(r.min_seconds, r.end_after_s, r.cooldown_s) for r in rules}
        kinds = {z.id: z for z in camera.zones}
        self._zone_polys = {z.id: list(z.polygon) for z in camera.zones}
        self._default_signal = [z.id for z in camera.zones if z.kind == "signal_queue"]
        self._kinds = kinds
        self.size = (1, 1)

    # ------------------------------------------------------------------------------------------
    def step(self, fs: FrameState, width: int, height: int) -> list[IncidentChange]:
        self.size = (width, height)
        t = fs.t
        for tr in fs.visible:
            h = self.hist.get(tr.track_id)
            if h is None:
                h = self.hist[tr.track_id] = History(tr.track_id)
            x0, y0, x1, y1 = tr.box
            h.add(t, (x0 * width, y0 * height, x1 * width, y1 * height), tr.cls)
        for tid in [k for k, h in self.hist.items() if t - h.last_t > HISTORY_S]:
            del self.hist[tid]
            self._upright.pop(tid, None)
        visible = {tr.track_id: tr for tr in fs.visible}
        out: list[IncidentChange] = []
        for rule in self.rules:
            obs = self._observe(rule, fs, visible)
            for transition, episode in self._trackers[rule.id].step(t, obs):
                out.append(IncidentChange(rule, TYPES[type(rule)], transition, episode))
        return out

    def close_all(self, t: float) -> list[IncidentChange]:
        out: list[IncidentChange] = []
        for rule in self.rules:
            for transition, episode in self._trackers[rule.id].close_all(t):
                out.append(IncidentChange(rule, TYPES[type(rule)], transition, episode))
        return out

    # ------------------------------------------------------------------------------------------
    def _c(self, tr: TrackState) -> str:
        """The track's class as of this frame (voted once per frame: ``TrackState.cls`` counts votes)."""
        return self.hist[tr.track_id].samples[-1][2]

    def _in_zone(self, zone: str | None, tr: TrackState) -> bool:
        return zone is None or _inside(self._zone_polys[zone], *tr.anchor)

    def _in_any(self, zones: list[str], tr: TrackState) -> bool:
        return any(_inside(self._zone_polys[z], *tr.anchor) for z in zones)

    def _observe(self, rule: SafetyRule, fs: FrameState, visible: dict[int, TrackState]) -> list[Observation]:
        if isinstance(rule, CollisionRule):
            return self._collision(rule, fs, visible)
        if isinstance(rule, VehicleFallenRule):
            return self._fallen(rule, fs, visible)
        if isinstance(rule, PersonDownRule):
            return self._person_down(rule, fs, visible)
        return self._blocked(rule, fs, visible)

    def _obs(self, key: str, tracks: list[TrackState], **details: float | int | str | bool) -> Observation:
        xs = [t.anchor[0] for t in tracks]
        ys = [t.anchor[1] for t in tracks]
        return Observation(
            key=key,
            track_ids=frozenset(t.track_id for t in tracks),
            classes=frozenset(t.cls for t in tracks),
            position=(sum(xs) / len(xs), sum(ys) / len(ys)) if tracks else None,
            details=dict(details),
        )

    # -- collision -----------------------------------------------------------------------------
    def _steady_speed(self, h: History, t: float) -> float | None:
        """Speed over the last second, believed only when both halves agree and no jump dominates (an
        id that hopped to another object, or a flickering box, is no fast vehicle)."""
        if t - h.first_seen < 1.0:
            return None
        v = h.speed(t - 1.0, t)
        v2 = h.speed(t - 0.5, t)
        if v is None or v2 is None or v2 < 0.6 * v or v2 > 1.7 * v:
            return None
        win = h.window(t - 1.0, t)
        steps = [
            math.hypot((b[0] + b[2] - a[0] - a[2]) / 2, (b[1] + b[3] - a[1] - a[3]) / 2)
            for (_, a, _), (_, b, _) in itertools.pairwise(win)
        ]
        if steps and max(steps) > 0.5 * sum(steps):
            return None
        return v

    def _collision(
        self, rule: CollisionRule, fs: FrameState, visible: dict[int, TrackState]
    ) -> list[Observation]:
        t = fs.t
        signal = rule.signal_zones or self._default_signal
        parties = [
            tr
            for tr in visible.values()
            if tr.track_id in self.hist and self._c(tr) in rule.classes and self._in_zone(rule.zone, tr)
        ]
        # 1. New contacts: boxes meet while a vehicle moves fast and steadily.
        for fast in parties:
            if self._c(fast) == "person":
                continue
            hf = self.hist[fast.track_id]
            v = self._steady_speed(hf, t)
            floor = rule.signal_min_speed if self._in_any(signal, fast) else rule.min_speed
            if v is None or v < floor:
                continue
            if fast.track_id in self.crashed:
                continue
            for other in parties:
                if other.track_id == fast.track_id or other.track_id in self.crashed:
                    continue
                ho = self.hist[other.track_id]
                key = (min(fast.track_id, other.track_id), max(fast.track_id, other.track_id))
                if key in self.contacts:
                    continue
                small = min(hf.box[3] - hf.box[1], ho.box[3] - ho.box[1])
                if _gap(hf.box, ho.box) > rule.contact_gap * small:
                    continue
                self.contacts[key] = Contact(
                    t,
                    fast.track_id,
                    other.track_id,
                    v,
                    position=((hf.box[0] + hf.box[2] + ho.box[0] + ho.box[2]) / 4, max(hf.box[3], ho.box[3])),
                    classes=frozenset({self._c(fast), self._c(other)}),
                    reach=max(hf.box[3] - hf.box[1], ho.box[3] - ho.box[1]),
                    moving={fast.track_id: v, other.track_id: ho.speed(t - 1.0, t) or 0.0},
                    boxes={fast.track_id: hf.box, other.track_id: ho.box},
                )
        # 2. Disruption within a second of the contact; 3. then a vehicle at rest where they met.
        out: list[Observation] = []
        for key, c in list(self.contacts.items()):
            age = t - c.t
            if c.disrupted_at is None:
                if age > rule.max_decel_seconds:
                    del self.contacts[key]
                    continue
                for k in (c.fast, c.other):
                    if k in visible:
                        c.boxes[k] = self.hist[k].box
                how = self._disruption(rule, c, t, visible)
                if how:
                    c.disrupted_at, c.how = t, how
                    log.debug("t=%.2f contact %s disrupted: %s (speed %.2f)", t, key, how, c.speed)
                continue
            if age > rule.confirm_seconds:
                del self.contacts[key]
                continue
            if c.fast in self.crashed or c.other in self.crashed or self._near_crash(c, t):
                del self.contacts[key]  # part of a crash already raised
                continue
            resting = self._resting_near(rule, c, t, visible)
            if resting:
                self.sites.append((t, *c.position, c.reach))
                log.debug(
                    "t=%.2f collision %s fast %s moving %s (%s, %.2f h/s, contact %.2f s ago), at rest: %s",
                    t,
                    key,
                    c.fast,
                    c.moving,
                    c.how,
                    c.speed,
                    age,
                    [r.track_id for r in resting],
                )
                del self.contacts[key]
                for k in (c.fast, c.other, *(r.track_id for r in resting)):
                    self.crashed[k] = t
                tracks = [visible[k] for k in (c.fast, c.other) if k in visible] + [
                    r for r in resting if r.track_id not in (c.fast, c.other)
                ]
                out.append(
                    self._obs(
                        f"pair-{key[0]}-{key[1]}",
                        tracks,
                        speed_before=round(c.speed, 2),
                        contact_s_ago=round(age, 2),
                        disruption=c.how,
                    )
                )
        # An incident stays open while a vehicle of it is still at rest.
        for ep in self._trackers[rule.id].episodes.values():
            still = [
                visible[k]
                for k in ep.track_ids
                if k in visible and (self.hist[k].speed(t - 1.0, t) or 0.0) <= rule.rest_speed
            ]
            if still:
                out.append(self._obs(ep.key, still))
        return out

    def _near_crash(self, c: Contact, t: float, window: float = 15.0) -> bool:
        self.sites = [s for s in self.sites if t - s[0] < 120.0]
        return any(
            t - when < window and math.hypot(x - c.position[0], y - c.position[1]) < 3 * max(reach, c.reach)
            for when, x, y, reach in self.sites
        )

    def _disruption(self, rule: CollisionRule, c: Contact, t: float, visible: dict[int, TrackState]) -> str:
        """What broke the meeting: an abrupt stop, or a party gone while not hidden by the other."""
        hf = self.hist.get(c.fast)
        ho = self.hist.get(c.other)
        if hf is None or ho is None:
            return ""
        if c.fast in visible:
            v = hf.speed(t - 0.4, t)
            if v is not None and v <= c.speed * (1 - rule.min_drop):
                return "abrupt_stop"
        for gone, stay, name in ((ho, hf, "other_vanished"), (hf, ho, "fast_vanished")):
            if name == "fast_vanished" and c.t - hf.first_seen < 2.0:
                continue  # a short-lived fast box that vanishes is more often a false detection
            if gone.track_id in visible or t - gone.last_t < rule.vanish_seconds:
                continue
            young = c.t - gone.first_seen < 1.0 and len(gone.samples) >= 3
            if c.moving.get(gone.track_id, 0.0) < 0.5 and not young:
                continue  # a standing object that vanishes at a meeting is hidden, not thrown
            # Hidden behind the other box (occlusion) is not a disruption: the vanished box must have
            # been mostly uncovered when last seen.
            last = gone.box
            near = [s for s in stay.samples if abs(s[0] - gone.last_t) < 0.05]
            if not near:
                continue
            cover = _overlap(last, near[-1][1]) / max(_area(last), 1.0)
            if cover < rule.max_cover:
                return name
        return ""

    def _resting_near(
        self, rule: CollisionRule, c: Contact, t: float, visible: dict[int, TrackState]
    ) -> list[TrackState]:
        """Vehicles come to rest where the two met: a party that was moving at the contact, or a
        track first seen after it on a party's last box (a wreck often gets a new id)."""
        out = []
        cx, cy = c.position
        for tr in visible.values():
            if self._c(tr) == "person" or tr.track_id in self.crashed:
                continue
            h = self.hist[tr.track_id]
            if c.how == "abrupt_stop" and tr.track_id != c.fast:
                continue  # after an abrupt stop it is the braking vehicle that must stay at rest
            if tr.track_id in (c.fast, c.other):
                if c.moving.get(tr.track_id, 0.0) < rule.min_speed * 0.8:
                    continue  # parked before the contact: not brought to rest by it
            else:
                if h.first_seen < c.t:
                    continue
                first = h.samples[0][1]
                gone = [box for k, box in c.boxes.items() if k not in visible]
                if not any(_overlap(first, box) > 0.3 * _area(first) for box in gone):
                    continue
            x0, _, x1, y1 = h.box
            if math.hypot((x0 + x1) / 2 - cx, y1 - cy) > rule.rest_reach * c.reach:
                continue
            if h.last_t - max(h.first_seen, c.t) < rule.rest_seconds:
                continue
            v = h.speed(t - rule.rest_seconds, t)
            if v is not None and v <= rule.rest_speed:
                out.append(tr)
        return out

    # -- vehicle fallen ------------------------------------------------------------------------
    def _fallen(
        self, rule: VehicleFallenRule, fs: FrameState, visible: dict[int, TrackState]
    ) -> list[Observation]:
        t = fs.t
        out = []
        for tr in visible.values():
            if self._c(tr) not in rule.classes or not self._in_zone(rule.zone, tr):
                continue
            h = self.hist[tr.track_id]
            if h.aspect() < rule.flip_ratio * 0.8 * min(h.slow_aspect, h.aspect(h.samples[0][1])):
                continue  # nowhere near a flip (cheap test before the exact medians)
            upright = [h.aspect(s[1]) for s in h.samples if s[0] <= t - 0.5 and s[2] == self._c(tr)]
            if len(upright) < 3 or (h.samples[-1][0] - h.first_seen) < rule.min_history_s:
                continue
            base = statistics.median(upright)
            now = statistics.median(h.aspect(s[1]) for s in h.window(t - 0.5, t))
            v = h.speed(t - 1.0, t)
            if now >= base * rule.flip_ratio and v is not None and v <= rule.max_motion:
                self.crashed[tr.track_id] = t
                self.fallen_at[tr.track_id] = t
                out.append(
                    self._obs(f"track-{tr.track_id}", [tr], aspect=round(now, 2), upright=round(base, 2))
                )
        return out

    # -- person down ---------------------------------------------------------------------------
    def _person_down(
        self, rule: PersonDownRule, fs: FrameState, visible: dict[int, TrackState]
    ) -> list[Observation]:
        t = fs.t
        after_crash = any(t - when < rule.crash_window_s for when, *_ in self.sites) or any(
            t - when < rule.crash_window_s for when in self.fallen_at.values()
        )
        limit = rule.crash_max_aspect if after_crash else rule.max_aspect
        out = []
        for tr in visible.values():
            if self._c(tr) != "person" or not self._in_zone(rule.zone, tr):
                continue
            h = self.hist[tr.track_id]
            if 1.0 / h.aspect() > 1.3 * limit:
                continue  # upright now (cheap test before the window median)
            if any(
                _overlap(h.box, self.hist[o.track_id].box) > 0.6 * _area(h.box)
                for o in visible.values()
                if o.track_id in self.hist and self._c(o) != "person"
            ):
                continue  # a "person" inside a vehicle's box: an occupant or a piece of the wreck
            win = h.window(t - 0.6, t)
            if len(win) < 3:
                continue
            ratio = statistics.median((s[1][3] - s[1][1]) / max(s[1][2] - s[1][0], 1.0) for s in win)
            v = h.speed(t - 0.6, t)
            if ratio > limit or v is None or v > rule.max_motion:
                continue
            # Without a crash nearby, only a person seen standing first and then down counts: a shape
            # that was always low is more often a mis-detected object or a seated rider.
            if (
                rule.upright_first
                and not after_crash
                and not any((s[1][3] - s[1][1]) / max(s[1][2] - s[1][0], 1.0) >= 1.8 for s in h.samples)
            ):
                continue
            out.append(self._obs(f"track-{tr.track_id}", [tr], aspect=round(ratio, 2)))
        return out

    # -- road blocked --------------------------------------------------------------------------
    def _blocked(
        self, rule: RoadBlockedRule, fs: FrameState, visible: dict[int, TrackState]
    ) -> list[Observation]:
        t = fs.t
        signal = rule.signal_zones or self._default_signal
        stopped = []
        for tr in visible.values():
            if self._c(tr) not in rule.classes or not self._in_zone(rule.zone, tr):
                continue
            if self._in_any(signal, tr):
                continue
            if rule.after_collision_only and tr.track_id not in self.crashed:
                continue
            v = self.hist[tr.track_id].speed(t - 2.0, t)
            if v is not None and v <= rule.max_motion:
                stopped.append(tr)
        if len(stopped) < rule.min_stopped:
            return []
        return [self._obs("road", stopped, vehicles=len(stopped))]
