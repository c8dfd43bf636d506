"""Road-safety rules with scripted tracks: a crash against a red-light queue, a person lying against one
standing, a motorbike down against a parked one, a blocked road after a crash."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from citywatch.site import Camera, FileSource, LatLon, Zone
from citywatch.site_safety import CollisionRule
from contract import IncidentEvent, IncidentMessage, IncidentType
from edge.detections import Detections
from edge.emit import Emitter, MemorySink
from edge.pipeline import CameraPipeline
from tests.edge.scripted import IDS, NAMES, at, image

FPS = 10.0
# (track id, class, x0, y0, x1, y1) in pixels of the 400x300 scripted frame
Box = tuple[int, str, float, float, float, float]


def _dets(boxes: list[Box]) -> Detections:
    if not boxes:
        return Detections.empty(NAMES)
    return Detections(
        xyxy=np.array([b[2:] for b in boxes], dtype=np.float64),
        confidence=np.full(len(boxes), 0.9),
        class_id=np.array([IDS[b[1]] for b in boxes], dtype=np.int64),
        tracker_id=np.array([b[0] for b in boxes], dtype=np.int64),
        class_names=NAMES,
    )


def _camera(**over: object) -> Camera:
    fields: dict[str, object] = dict(
        id="cam", name="Cam", location=LatLon(lat=10.0, lon=106.0), source=FileSource(path="x.mp4")
    )
    fields.update(over)
    return Camera.model_validate(fields)


def _run(cam: Camera, frames: list[list[Box]]) -> list[IncidentMessage]:
    sink = MemorySink()
    pipe = CameraPipeline(cam, 60, Emitter("site", "edge", cam.id, "cw", sink))
    img = image()
    for i, boxes in enumerate(frames):
        pipe.process(img, at(i, FPS), _dets(boxes))
    pipe.close(at(len(frames), FPS))
    return [m for _, m in sink.messages if isinstance(m, IncidentMessage)]


def _starts(msgs: list[IncidentMessage], kind: IncidentType) -> list[IncidentMessage]:
    return [m for m in msgs if m.type is kind and m.event is IncidentEvent.START]


def _car(tid: int, x: float, y: float = 200.0, w: float = 40.0, h: float = 30.0) -> Box:
    return (tid, "car", x - w / 2, y - h, x + w / 2, y)


def _moto(tid: int, x: float, y: float = 200.0, w: float = 24.0, h: float = 30.0) -> Box:
    return (tid, "motorcycle", x - w / 2, y - h, x + w / 2, y)


# ---------------------------------------------------------------------------------------------------
# Collision against a red-light queue


CONTACT = 17  # the frame where the crash script's boxes first meet


def crash(after: int = 40) -> list[list[Box]]:
    """A car at 3 box heights/s (9 px/frame) runs into a motorbike riding ahead of it at a third of
    that; the bike is thrown out of view at the contact; the car slides 1 s more and stays at rest."""
    frames: list[list[Box]] = []
    car_x, bike_x = 0.0, 150.0
    for i in range(60 + after):
        if i <= CONTACT:
            car_x += 9.0
            bike_x += 2.0
        elif i <= CONTACT + 10:
            car_x += 3.0
        boxes = [_car(1, car_x)]
        if i <= CONTACT:
            boxes.append(_moto(2, bike_x))
        frames.append(boxes)
    return frames


def red_light_queue(after: int = 40) -> list[list[Box]]:
    """Seen in perspective: a car at 3 box heights/s comes up behind a car waiting at the light, their
    boxes overlapping while it is still fast, and brakes smoothly over 3 s to stop behind it; the
    waiting car stays in view the whole time."""
    frames: list[list[Box]] = []
    x, v = 20.0, 9.0
    for _ in range(60 + after):
        frames.append([_car(1, x, y=215.0), _car(2, 170.0, y=200.0)])
        x += v
        v = max(0.0, v - 0.3)  # 9 px/frame to 0 in 30 frames (3 s): it stops at x = 155
    return frames


def occlusion(after: int = 40) -> list[list[Box]]:
    """A fast car overtakes a slower one on the near lane; the slower one's box is lost once the fast
    car's box covers more than 70 % of it (as a detector loses an occluded car), and the fast car
    then brakes to a stop at the kerb."""
    frames: list[list[Box]] = []
    x, v, slow = 20.0, 12.0, 150.0
    for i in range(60 + after):
        x += v
        if i >= 10:
            v = max(0.0, v - 1.2)  # then brakes to a stop within 1 s, not at once
        slow += 3.0
        boxes = [_car(1, x, y=230.0, w=70.0, h=50.0)]
        covered = max(0.0, min(x + 35.0, slow + 20.0) - max(x - 35.0, slow - 20.0)) / 40.0
        if covered <= 0.7:
            boxes.append(_car(2, slow, y=215.0, w=40.0, h=30.0))
        frames.append(boxes)
    return frames


def test_crash_raises_a_collision_within_three_seconds_of_contact() -> None:
    msgs = _run(_camera(), crash())
    starts = _starts(msgs, IncidentType.COLLISION)
    assert len(starts) == 1
    start = starts[0]
    contact = at(CONTACT, FPS)
    assert crash()[CONTACT][0][4] >= crash()[CONTACT][1][2]  # the boxes do meet there
    assert 0 < (start.started_at - contact).total_seconds() <= 3.0
    assert start.severity.value == "critical" and 1 in start.track_ids
    assert start.details["disruption"] == "other_vanished"
    assert start.snapshot is not None


@pytest.mark.parametrize("script", [red_light_queue, occlusion], ids=["red-light-queue", "occlusion"])
def test_no_collision_for_a_queue_or_an_occlusion(script: Callable[[], list[list[Box]]]) -> None:
    msgs = _run(_camera(), script())
    assert _starts(msgs, IncidentType.COLLISION) == []


def test_abrupt_stop_at_a_signal_needs_a_higher_speed() -> None:
    """The same crash inside a signal-queue zone: 3 box heights/s is under the zone's 3.5 floor."""
    zone = Zone(id="q", kind="signal_queue", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
    rule = CollisionRule(id="c", signal_min_speed=3.5)
    assert _starts(_run(_camera(zones=[zone], rules=[rule]), crash()), IncidentType.COLLISION) == []
    assert len(_starts(_run(_camera(rules=[rule]), crash()), IncidentType.COLLISION)) == 1


def test_road_blocked_after_a_crash_not_after_a_queue() -> None:
    # The wreck, and the queue, stand still for 25 s (the rule needs 20 s).
    assert len(_starts(_run(_camera(), crash(after=250)), IncidentType.ROAD_BLOCKED)) == 1
    assert _starts(_run(_camera(), red_light_queue(after=250)), IncidentType.ROAD_BLOCKED) == []


def test_road_safety_off() -> None:
    assert _run(_camera(road_safety=False), crash()) == []


# ---------------------------------------------------------------------------------------------------
# Person down against a person standing


def _person(tid: int, x: float, y: float, w: float, h: float) -> Box:
    return (tid, "person", x - w / 2, y - h, x + w / 2, y)


def test_person_lying_is_down_standing_is_not() -> None:
    # Upright (20x50) walking for 2 s, then lying (50x18) in the road for 3 s.
    lying = [[_person(5, 100.0 + i, 250.0, 20.0, 50.0)] for i in range(20)] + [
        [_person(5, 120.0, 250.0, 50.0, 18.0)] for _ in range(30)
    ]
    standing = [[_person(5, 120.0, 250.0, 20.0, 50.0)] for _ in range(50)]
    down = _starts(_run(_camera(), lying), IncidentType.PERSON_DOWN)
    assert len(down) == 1 and down[0].track_ids == [5]
    assert _starts(_run(_camera(), standing), IncidentType.PERSON_DOWN) == []


def test_a_shape_always_low_is_not_a_person_down_without_a_crash() -> None:
    always_low = [[_person(5, 120.0, 250.0, 50.0, 18.0)] for _ in range(50)]
    assert _starts(_run(_camera(), always_low), IncidentType.PERSON_DOWN) == []


# ---------------------------------------------------------------------------------------------------
# A motorbike down against a parked one


def test_overturned_motorbike_is_fallen_parked_is_not() -> None:
    # Upright (24 wide, 30 tall) riding for 2 s, then down on its side (60x18) and still for 3 s.
    fallen = [[_moto(7, 100.0 + 3 * i, w=24.0, h=30.0)] for i in range(20)] + [
        [_moto(7, 160.0, w=60.0, h=18.0)] for _ in range(30)
    ]
    parked = [[_moto(7, 160.0, w=24.0, h=30.0)] for _ in range(50)]
    assert len(_starts(_run(_camera(), fallen), IncidentType.VEHICLE_FALLEN)) == 1
    assert _starts(_run(_camera(), parked), IncidentType.VEHICLE_FALLEN) == []
