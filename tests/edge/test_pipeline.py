"""The camera pipeline end to end with scripted detections: bins, incidents, snapshots, speed, zones."""

from __future__ import annotations

import base64
from datetime import timedelta

import cv2
import numpy as np
import pytest

from citywatch.site import (
    Calibration,
    Camera,
    CongestionRule,
    CountingLine,
    CrowdingRule,
    Directions,
    FileSource,
    IntrusionRule,
    Junction,
    LatLon,
    LoiteringRule,
    StoppedVehicleRule,
    TamperingRule,
    WrongWayRule,
    Zone,
)
from contract import CountsMessage, HealthFlag, IncidentEvent, IncidentMessage, IncidentType
from contract.messages import Envelope
from edge.emit import Emitter, MemorySink
from edge.pipeline import CameraPipeline
from tests.edge.scripted import T0, ScriptedDetector, at, image

LINE = CountingLine(
    id="L1", points=[(0.0, 0.5), (1.0, 0.5)], directions=Directions(positive="south", negative="north")
)
ZONE = Zone(id="z", kind="restricted", polygon=[(0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9)])


def camera(**over: object) -> Camera:
    fields: dict[str, object] = dict(
        id="cam",
        name="Cam",
        location=LatLon(lat=13.77, lon=109.22),
        source=FileSource(path="x.mp4"),
        lines=[LINE],
        zones=[ZONE],
    )
    fields.update(over)
    return Camera.model_validate(fields)


def run(
    cam: Camera,
    frames: list[list[tuple[int, str, float, float]]],
    images: list[np.ndarray] | None = None,
    bin_seconds: int = 10,
    fps: float = 10.0,
) -> list[Envelope]:
    sink = MemorySink()
    pipe = CameraPipeline(
        cam, bin_seconds, Emitter("site", "edge", cam.id, "citywatch", sink), target_fps=fps
    )
    det = ScriptedDetector(frames)
    for i in range(len(frames)):
        img = images[i] if images else image()
        pipe.process(img, at(i, fps), det.track(img))
    pipe.close(at(len(frames), fps))
    return [m for _, m in sink.messages]


def test_counts_per_bin_with_true_boundaries_and_gap_free_seq() -> None:
    # A car crosses southbound in the first bin, a motorcycle northbound in the second.
    car = [[(1, "car", 0.3, y)] for y in np.linspace(0.2, 0.8, 20)]
    moto = [[(2, "motorcycle", 0.6, y)] for y in np.linspace(0.8, 0.2, 20)]
    idle: list[list[tuple[int, str, float, float]]] = [[] for _ in range(70)]
    msgs = run(camera(zones=[]), car + idle + moto + [[]] * 30)
    counts = [m for m in msgs if isinstance(m, CountsMessage)]
    assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
    assert counts[0].bin_start == T0 and counts[0].bin_end == T0 + timedelta(seconds=10)
    assert counts[1].bin_start == T0 + timedelta(seconds=10)
    assert counts[-1].bin_end == at(140)  # the last bin ends when the camera stopped
    got = [(c.line_id, c.direction, c.cls, c.count) for m in counts for c in m.lines]
    assert got == [("L1", "south", "car", 1), ("L1", "north", "motorcycle", 1)]
    assert all(m.frames > 0 for m in counts)
    assert all(not m.speeds for m in counts)  # no calibration, no speed


def test_intrusion_raises_one_incident_with_a_snapshot() -> None:
    walk = [[(5, "person", x, 0.75)] for x in np.linspace(0.3, 0.8, 60)] + [[]] * 60
    cam = camera(rules=[IntrusionRule(id="in", zone="z", min_seconds=1.0, end_after_s=2.0)])
    incidents = [m for m in run(cam, walk) if isinstance(m, IncidentMessage)]
    assert [i.event for i in incidents] == [IncidentEvent.START, IncidentEvent.END]
    start, end = incidents
    assert start.type is IncidentType.INTRUSION and start.zone_id == "z" and start.track_ids == [5]
    assert (
        start.incident_id == end.incident_id and end.ended_at is not None and end.ended_at > start.started_at
    )
    assert start.snapshot is not None and end.snapshot is None
    jpeg = base64.b64decode(start.snapshot.data_b64)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    assert img.shape[:2] == (start.snapshot.height, start.snapshot.width)
    assert (img[..., 2] > 200).any()  # the intruder's box is drawn in red
    assert start.latitude == pytest.approx(13.77)


def test_wrong_way_once_per_offender() -> None:
    ok = [[(1, "motorcycle", 0.3, y)] for y in np.linspace(0.8, 0.2, 20)]
    bad = [[(2, "motorcycle", 0.7, y)] for y in np.linspace(0.2, 0.8, 20)]
    cam = camera(zones=[], rules=[WrongWayRule(id="ww", line="L1", expected="north", end_after_s=1.0)])
    incidents = [m for m in run(cam, ok + bad + [[]] * 30) if isinstance(m, IncidentMessage)]
    assert [(i.event, i.track_ids) for i in incidents] == [
        (IncidentEvent.START, [2]),
        (IncidentEvent.END, [2]),
    ]
    assert incidents[0].details["direction"] == "south"


def test_black_camera_is_tampering_and_flags_the_bin() -> None:
    rule = TamperingRule(id="t", min_seconds=2.0, end_after_s=1.0)
    images = [
        image(90) + np.random.default_rng(i).integers(0, 60, image().shape, dtype=np.uint8) for i in range(20)
    ]
    images += [image(0)] * 40 + images[:20]
    msgs = run(camera(zones=[], rules=[rule]), [[]] * 80, images=images)
    incidents = [m for m in msgs if isinstance(m, IncidentMessage)]
    assert [(i.event, i.details.get("condition")) for i in incidents] == [
        (IncidentEvent.START, "black"),
        (IncidentEvent.END, "black"),
    ]
    flags = {f for m in msgs if isinstance(m, CountsMessage) for f in m.health}
    assert HealthFlag.BLACK in flags


def test_calibrated_camera_reports_speed() -> None:
    # 0.1 image units = 10 m along the road; a car moving 0.02/frame at 10 fps = 20 m/s = 72 km/h.
    cal = Calibration(
        image=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
        world=[
            LatLon(lat=13.7709, lon=109.22),
            LatLon(lat=13.7709, lon=109.220925),
            LatLon(lat=13.77, lon=109.220925),
            LatLon(lat=13.77, lon=109.22),
        ],
    )
    car = [[(1, "car", 0.5, y)] for y in np.arange(0.1, 0.95, 0.02)]
    msgs = run(camera(zones=[], calibration=cal), car + [[]] * 20)
    speeds = [s for m in msgs if isinstance(m, CountsMessage) for s in m.speeds]
    assert len(speeds) == 1
    assert speeds[0].mean_kmh == pytest.approx(72, rel=0.05)


def test_zone_occupancy_and_dwell() -> None:
    stay = [[(7, "car", 0.75, 0.75)] for _ in range(50)] + [[(7, "car", 0.3, 0.3)]] * 5
    msgs = run(camera(lines=[]), stay, bin_seconds=60)
    zones = [z for m in msgs if isinstance(m, CountsMessage) for z in m.zones]
    assert len(zones) == 1
    z = zones[0]
    assert (z.zone_id, z.cls, z.max_count, z.entries) == ("z", "car", 1, 1)
    assert z.mean_dwell_s == pytest.approx(5.0, abs=0.2)


ROAD = Zone(id="road", kind="carriageway", polygon=[(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)])


@pytest.mark.parametrize(
    ("rule", "frames", "kind", "tracks"),
    [
        pytest.param(
            StoppedVehicleRule(id="r", zone="road", min_seconds=3.0, end_after_s=1.0),
            [[(1, "car", 0.5, 0.6)]] * 60 + [[]] * 20,
            IncidentType.STOPPED_VEHICLE,
            [1],
            id="stopped-vehicle",
        ),
        pytest.param(
            CongestionRule(id="r", zone="road", min_vehicles=3, min_seconds=2.0, end_after_s=1.0),
            [[(i, "car", 0.2 + 0.2 * i + 0.001 * f, 0.7) for i in range(1, 4)] for f in range(40)]
            + [[]] * 20,
            IncidentType.CONGESTION,
            [1, 2, 3],
            id="congestion",
        ),
        pytest.param(
            CrowdingRule(id="r", zone="road", min_people=4, min_seconds=1.0, end_after_s=1.0),
            [[(i, "person", 0.1 + 0.2 * i, 0.8) for i in range(1, 5)]] * 30 + [[]] * 20,
            IncidentType.CROWDING,
            [1, 2, 3, 4],
            id="crowding",
        ),
        pytest.param(
            LoiteringRule(id="r", zone="road", min_seconds=4.0, end_after_s=1.0),
            [[(9, "person", 0.5 + 0.002 * (f % 5), 0.8)] for f in range(70)] + [[]] * 20,
            IncidentType.LOITERING,
            [9],
            id="loitering",
        ),
    ],
)
def test_zone_rules_raise_one_incident(
    rule: StoppedVehicleRule | CongestionRule | CrowdingRule | LoiteringRule,
    frames: list[list[tuple[int, str, float, float]]],
    kind: IncidentType,
    tracks: list[int],
) -> None:
    msgs = run(camera(lines=[], zones=[ROAD], rules=[rule]), frames)
    incidents = [m for m in msgs if isinstance(m, IncidentMessage)]
    assert [i.event for i in incidents if i.event is not IncidentEvent.UPDATE] == [
        IncidentEvent.START,
        IncidentEvent.END,
    ]
    assert all(i.type is kind for i in incidents)
    assert incidents[-1].track_ids == tracks


def test_a_moving_car_is_not_stopped_and_a_short_visit_is_not_loitering() -> None:
    moving = [[(1, "car", 0.1 + 0.01 * f, 0.6)] for f in range(60)]
    rules = [
        StoppedVehicleRule(id="s", zone="road", min_seconds=3.0),
        LoiteringRule(id="l", zone="road", min_seconds=10.0),
    ]
    visit = [[(2, "person", 0.5, 0.8)]] * 50
    assert not [
        m for m in run(camera(lines=[], zones=[ROAD], rules=rules), moving) if isinstance(m, IncidentMessage)
    ]
    assert not [
        m for m in run(camera(lines=[], zones=[ROAD], rules=rules), visit) if isinstance(m, IncidentMessage)
    ]


def test_an_id_hop_across_the_line_is_not_wrong_way() -> None:
    # Track 3 follows a northbound motorbike above the line, then its id jumps to a vehicle further
    # down and stays there: the line sees a southbound crossing, but nobody drove the wrong way.
    hop = [[(3, "motorcycle", 0.7, 0.45 - 0.005 * f)] for f in range(10)]
    hop += [[(3, "motorcycle", 0.72, 0.75 - 0.005 * f)] for f in range(20)]
    cam = camera(zones=[], rules=[WrongWayRule(id="ww", line="L1", expected="north", end_after_s=1.0)])
    assert not [m for m in run(cam, hop + [[]] * 20) if isinstance(m, IncidentMessage)]


# A junction: L1 (horizontal, y=0.5) and L2 (vertical, x=0.5), both two-way approaches.
LINE2 = CountingLine(
    id="L2", points=[(0.5, 0.0), (0.5, 1.0)], directions=Directions(positive="west", negative="east")
)
JUNCTION = Junction(id="j1", name="Main x Side", entries=["L1", "L2"], exits=["L1", "L2"])
Frames = list[list[tuple[int, str, float, float]]]


def _up_then_right(tid: int, cls: str = "car") -> Frames:
    """Enters over L1 going north at x=0.3, then turns right and leaves over L2 at y=0.3."""
    up = [[(tid, cls, 0.3, float(y))] for y in np.linspace(0.8, 0.3, 20)]
    right = [[(tid, cls, float(x), 0.3)] for x in np.linspace(0.3, 0.8, 20)]
    return up + right


def _left_then_down(tid: int, cls: str = "car") -> Frames:
    """Enters over L2 going west at y=0.3, then turns left and leaves over L1 at x=0.3."""
    left = [[(tid, cls, float(x), 0.3)] for x in np.linspace(0.8, 0.3, 20)]
    down = [[(tid, cls, 0.3, float(y))] for y in np.linspace(0.3, 0.8, 20)]
    return left + down


def _movements(msgs: list[Envelope]) -> dict[tuple[str, str, str, str], int]:
    out: dict[tuple[str, str, str, str], int] = {}
    for m in msgs:
        if isinstance(m, CountsMessage):
            for mv in m.movements:
                key = (mv.junction_id, mv.from_line, mv.to_line, mv.cls)
                out[key] = out.get(key, 0) + mv.count
    return out


def _together(*paths: Frames) -> Frames:
    """Play several objects' paths at the same time (frame i holds every path's i-th position)."""
    n = max(len(p) for p in paths)
    return [[obj for p in paths if i < len(p) for obj in p[i]] for i in range(n)]


@pytest.mark.parametrize(
    ("frames", "want"),
    [
        pytest.param(_up_then_right(1), {("j1", "L1", "L2", "car"): 1}, id="L1-to-L2"),
        pytest.param(_left_then_down(1), {("j1", "L2", "L1", "car"): 1}, id="two-way-L2-to-L1"),
        pytest.param([[(1, "car", 0.3, float(y))] for y in np.linspace(0.8, 0.3, 20)], {}, id="entry-only"),
        pytest.param(
            _together(_up_then_right(1), _up_then_right(2, "motorcycle")[5:], _up_then_right(3)[10:]),
            {("j1", "L1", "L2", "car"): 2, ("j1", "L1", "L2", "motorcycle"): 1},
            id="three-objects",
        ),
        pytest.param(
            # Back over L2 after leaving: still one movement for this object and junction.
            _up_then_right(1)
            + [[(1, "car", 0.8, float(y))] for y in np.linspace(0.3, 0.8, 10)]
            + [[(1, "car", float(x), 0.8)] for x in np.linspace(0.8, 0.2, 20)],
            {("j1", "L1", "L2", "car"): 1},
            id="once-per-junction",
        ),
    ],
)
def test_turning_movements(frames: Frames, want: dict[tuple[str, str, str, str], int]) -> None:
    cam = camera(lines=[LINE, LINE2], zones=[], junctions=[JUNCTION])
    msgs = run(cam, [*frames, *[[] for _ in range(20)]], bin_seconds=60)
    assert _movements(msgs) == want
    # the plain line counts are unchanged by the junction
    counts = [m for m in msgs if isinstance(m, CountsMessage)]
    assert sum(c.count for m in counts for c in m.lines) >= sum(want.values())


def test_camera_without_junctions_sends_no_movements() -> None:
    msgs = run(camera(lines=[LINE, LINE2], zones=[]), _up_then_right(1), bin_seconds=60)
    counts = [m for m in msgs if isinstance(m, CountsMessage)]
    assert sum(c.count for m in counts for c in m.lines) == 2 and _movements(msgs) == {}


def test_junction_state_is_forgotten_when_the_track_expires() -> None:
    cam = camera(lines=[LINE, LINE2], zones=[], junctions=[JUNCTION])
    pipe = CameraPipeline(cam, 60, Emitter("site", "edge", cam.id, "citywatch", MemorySink()))
    frames: Frames = [[(1, "car", 0.3, float(y))] for y in np.linspace(0.8, 0.3, 20)]
    det = ScriptedDetector(frames + [[] for _ in range(80)])  # 8 s unseen: the track expires (5 s)
    for i in range(100):
        pipe.process(image(), at(i), det.track(image()))
        if i == 30:
            assert pipe.junctions.open_entries == 1
    assert pipe.junctions.open_entries == 0
