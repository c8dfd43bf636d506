"""The motion gate and the near-a-line test, on synthetic frames."""

from __future__ import annotations

from citywatch.site_detector import MotionSettings
from edge.analytics.tracks import TrackStore
from edge.motion import MotionGate, near_a_line
from tests.edge.scripted import H, W, dets
from tests.edge.synthetic import car_frame


def test_a_static_scene_is_detected_at_the_idle_rate_and_motion_at_every_frame() -> None:
    gate = MotionGate(MotionSettings(idle_fps=1.0, hold_s=0.5))
    fps = 25
    static = [gate.should_detect(car_frame(None), i / fps, False) for i in range(100)]  # 4 s
    assert sum(static) == 4
    moving = [gate.should_detect(car_frame(0.3 + 0.01 * i), 4 + i / fps, False) for i in range(25)]
    assert all(moving)
    after = [gate.should_detect(car_frame(None), 5 + i / fps, False) for i in range(25)]
    assert all(after[: int(0.5 * fps) - 1]) and not all(after)  # held for hold_s, then idle again


def test_motion_outside_the_region_is_ignored() -> None:
    gate = MotionGate(MotionSettings(), roi=(0.0, 0.0, 1.0, 0.3))
    gate.should_detect(car_frame(None), 0.0, False)
    decisions = [gate.should_detect(car_frame(0.7 + 0.01 * i), 0.1 + i / 25, False) for i in range(20)]
    assert not any(decisions)  # the car drives in the lower half, the region is the top 30 %


def test_a_disabled_gate_detects_every_frame() -> None:
    gate = MotionGate(MotionSettings(enabled=False))
    assert all(gate.should_detect(car_frame(None), i / 25, False) for i in range(50))


def test_near_a_line_only_for_moving_tracks_close_to_a_line() -> None:
    line = [[(0.0, 0.5), (1.0, 0.5)]]
    store = TrackStore()
    for i in range(11):  # moving down towards the line, 0.05 a frame at 10 fps
        visible = store.update(dets([(1, "car", 0.5, 0.1 + 0.03 * i)]), i / 10, W, H)
    assert near_a_line(line, visible)  # at y = 0.4
    assert not near_a_line([[(0.0, 0.9), (1.0, 0.9)]], visible)
    parked = TrackStore()
    for i in range(11):
        still = parked.update(dets([(2, "car", 0.5, 0.48)]), i / 10, W, H)
    assert not near_a_line(line, still)
