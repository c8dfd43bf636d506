"""Line counting: the cases that break naive counters, as a table of scripted tracks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from citywatch.site import CountingLine, Directions
from edge.analytics.lines import LineCounter
from edge.analytics.tracks import TrackStore
from tests.edge.scripted import H, Obj, W, dets

LINE = CountingLine(
    id="L1", points=[(0.0, 0.5), (1.0, 0.5)], directions=Directions(positive="down", negative="up")
)
SHORT = CountingLine(
    id="S", points=[(0.0, 0.5), (0.4, 0.5)], directions=Directions(positive="down", negative="up")
)


def run(frames: list[list[Obj]], line: CountingLine = LINE, fps: float = 10.0) -> list[tuple[str, str]]:
    store = TrackStore()
    counter = LineCounter(line)
    out = []
    for i, objs in enumerate(frames):
        t = i / fps
        visible = store.update(dets(objs), t, W, H)
        out += counter.update(visible, t)
        gone = store.expire(t)
        out += counter.forget({g.track_id for g in gone})
    out += counter.flush()
    return sorted((c.direction, c.cls) for c in out)


def path(tid: int, cls: str, x: float, ys: list[float]) -> list[list[Obj]]:
    return [[(tid, cls, x, y)] for y in ys]


def merge(*tracks: list[list[Obj]]) -> list[list[Obj]]:
    n = max(len(t) for t in tracks)
    return [[o for t in tracks if i < len(t) for o in t[i]] for i in range(n)]


Y_DOWN = list(np.linspace(0.2, 0.8, 25))
Y_UP = Y_DOWN[::-1]

CASES: list[tuple[str, Callable[[], list[list[Obj]]], CountingLine, list[tuple[str, str]]]] = [
    ("down", lambda: path(1, "car", 0.5, Y_DOWN), LINE, [("down", "car")]),
    ("up", lambda: path(1, "motorcycle", 0.5, Y_UP), LINE, [("up", "motorcycle")]),
    ("jitter-on-line", lambda: path(1, "car", 0.5, [0.5 + 0.008 * (-1) ** i for i in range(40)]), LINE, []),
    (
        "stop-and-go-at-stop-line",
        lambda: path(
            1,
            "car",
            0.5,
            [0.3, 0.4, 0.47, 0.49] + [0.495 + 0.01 * (-1) ** i for i in range(30)] + [0.55, 0.6, 0.7],
        ),
        LINE,
        [("down", "car")],
    ),
    (
        "id-switch-mid-crossing",
        lambda: (
            path(1, "car", 0.5, [0.3, 0.35, 0.4, 0.45, 0.49])
            + path(2, "car", 0.505, [0.52, 0.56, 0.6, 0.65, 0.7])
        ),
        LINE,
        [("down", "car")],
    ),
    ("frame-skipping-jump", lambda: path(1, "bus", 0.5, [0.2, 0.25, 0.85, 0.9]), LINE, [("down", "bus")]),
    (
        "side-by-side",
        lambda: merge(path(1, "motorcycle", 0.45, Y_UP), path(2, "motorcycle", 0.5, Y_UP)),
        LINE,
        [("up", "motorcycle"), ("up", "motorcycle")],
    ),
    ("beside-a-short-line", lambda: path(1, "car", 0.7, Y_DOWN), SHORT, []),
    ("through-a-short-line", lambda: path(1, "car", 0.2, Y_DOWN), SHORT, [("down", "car")]),
    ("u-turn-counts-once", lambda: path(1, "car", 0.5, Y_DOWN + Y_UP), LINE, [("down", "car")]),
    ("appears-past-the-line", lambda: path(1, "car", 0.5, [0.6, 0.7, 0.8]), LINE, []),
    (
        "rider-and-bike-count-once-as-motorcycle",
        lambda: merge(path(1, "motorcycle", 0.5, Y_UP), path(2, "person", 0.5, [y - 0.03 for y in Y_UP])),
        LINE,
        [("up", "motorcycle")],
    ),
    (
        "rider-without-visible-bike-counts-as-motorcycle",
        lambda: path(2, "person", 0.5, list(np.linspace(0.9, 0.1, 12))),
        LINE,
        [("up", "motorcycle")],
    ),
    (
        "pedestrian-counts-as-person",
        lambda: path(3, "person", 0.5, list(np.linspace(0.45, 0.56, 40))),
        LINE,
        [("down", "person")],
    ),
    (
        "class-settles-by-vote",
        lambda: (
            [[(1, "truck", 0.5, y)] for y in Y_DOWN[:10]]
            + [[(1, "car", 0.5, y)] for y in Y_DOWN[10:]]
            + [[(1, "car", 0.5, 0.8)]] * 20
        ),
        LINE,
        [("down", "car")],
    ),
]


@pytest.mark.parametrize(
    ("frames", "line", "expected"), [pytest.param(f, ln, e, id=n) for n, f, ln, e in CASES]
)
def test_line_counting(
    frames: Callable[[], list[list[Obj]]], line: CountingLine, expected: list[tuple[str, str]]
) -> None:
    assert run(frames(), line) == expected


def test_polyline_counts_each_object_once() -> None:
    bent = CountingLine(id="P", points=[(0.0, 0.5), (0.5, 0.6), (1.0, 0.5)])
    assert run(path(1, "car", 0.5, Y_DOWN), bent) == [("positive", "car")]


def test_frame_rate_does_not_change_the_count() -> None:
    frames = merge(path(1, "car", 0.3, Y_DOWN), path(2, "car", 0.7, Y_UP))
    full = run(frames)
    skipped = run(frames[::5], fps=2.0)
    assert full == skipped == [("down", "car"), ("up", "car")]


def test_a_momentary_jump_across_the_line_is_not_a_crossing() -> None:
    ys = [0.3, 0.35, 0.4, 0.7, 0.41, 0.42, 0.43, 0.42, 0.41, 0.4, 0.39, 0.38, 0.37, 0.36, 0.35]
    assert run(path(1, "car", 0.5, ys)) == []
