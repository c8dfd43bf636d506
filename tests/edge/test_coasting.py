"""Coasting: a lost track is continued where its motion says it should be, so a crossing counts once."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.site import CountingLine, Directions
from edge.analytics.lines import LineCounter
from edge.analytics.tracks import TrackStore
from tests.edge.scripted import H, Obj, W, dets

LINE = CountingLine(
    id="L1", points=[(0.0, 0.5), (1.0, 0.5)], directions=Directions(positive="down", negative="up")
)


def count(frames: list[list[Obj]], fps: float = 10.0) -> list[tuple[str, str, int]]:
    store = TrackStore()
    counter = LineCounter(LINE)
    out = []
    for i, objs in enumerate(frames):
        t = i / fps
        visible = store.update(dets(objs), t, W, H)
        out += counter.update(visible, t)
        out += counter.forget({g.track_id for g in store.expire(t)})
    out += counter.flush()
    return sorted((c.direction, c.cls, c.track_id) for c in out)


def drive(
    y0: float, speed: float, frames: range, tid: int, cls: str = "car", x: float = 0.5
) -> dict[int, Obj]:
    """Object ``tid`` moving down at ``speed`` (normalized units per frame), seen in ``frames``."""
    return {i: (tid, cls, x, y0 + speed * i) for i in frames}


def play(*tracks: dict[int, Obj]) -> list[list[Obj]]:
    n = max(max(t) for t in tracks) + 1
    return [[t[i] for t in tracks if i in t] for i in range(n)]


CASES = [
    # Seen above the line as id 1, undetected for 4 frames while it crosses, seen below as id 2.
    ("crossing-while-undetected", [drive(0.25, 0.05, range(0, 5), 1), drive(0.25, 0.05, range(9, 14), 2)], 1),
    # The same with a long gap at a low detection rate (a busy shared detector): 1.2 s unseen.
    ("long-gap", [drive(0.2, 0.04, range(0, 6), 1), drive(0.2, 0.04, range(18, 22), 7)], 1),
    # Two cars one behind the other, the first lost while crossing: still two crossings, not one.
    (
        "two-cars-in-a-row",
        [
            drive(0.25, 0.05, range(0, 5), 1),
            drive(0.25, 0.05, range(9, 14), 2),
            drive(0.05, 0.05, range(0, 16), 3, x=0.52),
        ],
        2,
    ),
]


@pytest.mark.parametrize(("frames", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_a_crossing_between_two_detections_is_counted_once(
    frames: list[dict[int, Obj]], expected: int
) -> None:
    crossings = count(play(*frames))
    assert [(d, c) for d, c, _ in crossings] == [("down", "car")] * expected


def test_a_new_object_far_from_the_prediction_is_not_taken_for_the_lost_one() -> None:
    """Id 1 drove down and was lost; id 2 appears where id 1 came from (another car): not stitched."""
    store = TrackStore()
    for i in range(5):
        store.update(dets([(1, "car", 0.5, 0.25 + 0.05 * i)]), i / 10, W, H)
    visible = store.update(dets([(2, "car", 0.5, 0.25)]), 0.8, W, H)
    assert [v.track_id for v in visible] == [2]


def test_velocity_is_a_least_squares_fit() -> None:
    store = TrackStore()
    for i in range(6):
        store.update(dets([(1, "car", 0.2 + 0.01 * i, 0.3 + 0.02 * i)]), i / 10, W, H)
    v = store.tracks[1].velocity()
    assert v is not None
    assert np.allclose(v, (0.1, 0.2), atol=1e-6)
    assert np.allclose(store.tracks[1].predicted_anchor(1.0, horizon=2.0), (0.25 + 0.05, 0.4 + 0.1 * 1.0))
