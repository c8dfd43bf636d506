"""Line crossing counts under arbitrary paths: once at most per track and line, however it wiggles;
exactly once, in the right direction, for a path from well on one side to well on the other."""

from __future__ import annotations

import math

from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from citywatch.geometry import PointT, cross
from citywatch.site import CountingLine
from edge.analytics.lines import Crossing, LineCounter
from edge.analytics.tracks import TrackState, TrackStore
from tests.edge.scripted import H, W, dets

unit = st.floats(min_value=0.0, max_value=1.0)
anywhere = st.floats(min_value=-0.2, max_value=1.2)
bands = st.floats(min_value=0.0, max_value=0.5)


@st.composite
def lines(draw: st.DrawFn, band: st.SearchStrategy[float] = bands) -> CountingLine:
    """A counting line as the site config admits it: 2-4 points in the frame, no two in a row equal."""
    pts = draw(st.lists(st.tuples(unit, unit), min_size=2, max_size=4))
    assume(all(pts[i] != pts[i + 1] for i in range(len(pts) - 1)))
    return CountingLine(id="L", points=pts, min_travel=draw(band))


def run(line: CountingLine, paths: list[list[PointT]], fps: float = 10.0) -> list[Crossing]:
    """Feed each path as one track's anchors, a frame at a time, then settle what is pending."""
    counter = LineCounter(line)
    tracks = [TrackState(track_id=i + 1, first_seen=0.0, last_seen=0.0) for i in range(len(paths))]
    out: list[Crossing] = []
    for frame in range(max(len(p) for p in paths)):
        t = frame / fps
        visible = []
        for track, path in zip(tracks, paths, strict=True):
            if frame < len(path):
                track.anchors.append((t, *path[frame]))
                track.class_votes["car"] += 1
                track.last_seen = t
                visible.append(track)
        out += counter.update(visible, t)
    out += counter.flush()
    assert counter.flush() == [], "settling twice must not count again"
    return out


@settings(max_examples=400, deadline=None)
@given(
    lines(),
    st.lists(st.lists(st.tuples(anywhere, anywhere), min_size=1, max_size=40), min_size=1, max_size=3),
)
def test_a_track_is_counted_at_most_once_however_it_wiggles(
    line: CountingLine, paths: list[list[PointT]]
) -> None:
    crossings = run(line, paths)
    ids = [c.track_id for c in crossings]
    assert len(ids) == len(set(ids)), crossings


def _walk(start: PointT, end: PointT, frames: int) -> list[PointT]:
    return [
        (start[0] + (end[0] - start[0]) * i / (frames - 1), start[1] + (end[1] - start[1]) * i / (frames - 1))
        for i in range(frames)
    ]


@st.composite
def straight_crossings(draw: st.DrawFn) -> tuple[CountingLine, list[PointT]]:
    """A straight two-point line and a straight path through its middle, from well past the hysteresis
    band on one side to well past it on the other, sampled at 2-60 frames."""
    p = draw(st.tuples(unit, unit))
    q = draw(st.tuples(unit, unit))
    assume(math.dist(p, q) >= 0.2)
    band = draw(st.floats(min_value=0.0, max_value=0.1))
    s = draw(st.floats(min_value=0.25, max_value=0.75))
    c = (p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1]))
    length = math.dist(p, q)
    normal = (-(q[1] - p[1]) / length, (q[0] - p[0]) / length)
    angle = draw(st.floats(min_value=-1.0, max_value=1.0))  # radians from the normal, under 60 degrees
    direction = (
        normal[0] * math.cos(angle) - normal[1] * math.sin(angle),
        normal[0] * math.sin(angle) + normal[1] * math.cos(angle),
    )
    reach = (band + draw(st.floats(min_value=0.01, max_value=0.5))) / math.cos(angle)
    start = (c[0] - reach * direction[0], c[1] - reach * direction[1])
    end = (c[0] + reach * direction[0], c[1] + reach * direction[1])
    line = CountingLine(id="L", points=[p, q], min_travel=band)
    return line, _walk(start, end, draw(st.integers(min_value=2, max_value=60)))


@settings(max_examples=400, deadline=None)
@given(straight_crossings())
def test_a_straight_crossing_counts_once_and_reversing_it_reverses_the_direction(
    case: tuple[CountingLine, list[PointT]],
) -> None:
    line, path = case
    note(f"line {line.points} band {line.min_travel}; path {path}")
    a, b = line.points[0], line.points[1]
    positive = cross(a, b, path[-1]) > 0
    forward = run(line, [path])
    assert [c.positive for c in forward] == [positive]
    want = line.directions.positive if positive else line.directions.negative
    assert forward[0].direction == want
    backward = run(line, [path[::-1]])
    assert [c.positive for c in backward] == [not positive]


@st.composite
def graph_lines(draw: st.DrawFn) -> CountingLine:
    """A polyline drawn left to right across the frame (a function of x), between y = 0.3 and 0.7."""
    inner = draw(st.lists(st.floats(min_value=0.01, max_value=0.99), max_size=3, unique=True))
    xs = [0.0, *sorted(inner), 1.0]
    ys = draw(st.lists(st.floats(min_value=0.3, max_value=0.7), min_size=len(xs), max_size=len(xs)))
    band = draw(st.floats(min_value=0.0, max_value=0.25))
    return CountingLine(id="P", points=list(zip(xs, ys, strict=True)), min_travel=band)


@settings(max_examples=300, deadline=None)
@given(graph_lines(), st.floats(min_value=0.02, max_value=0.98), st.integers(min_value=2, max_value=60))
def test_a_polyline_is_crossed_once_by_a_path_from_top_to_bottom(
    line: CountingLine, x: float, frames: int
) -> None:
    """Every point at y = 0 is above the line and at y = 1 below it, at least 0.3 away from it."""
    down = _walk((x, 0.0), (x, 1.0), frames)
    assert [c.direction for c in run(line, [down])] == [line.directions.positive]
    assert [c.direction for c in run(line, [down[::-1]])] == [line.directions.negative]


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=0.1, max_value=0.9),
    st.integers(min_value=2, max_value=40),
    st.integers(min_value=1, max_value=5),
    st.booleans(),
)
def test_through_the_tracker_a_straight_crossing_counts_once_whatever_the_frame_rate(
    x: float, frames: int, skip: int, downward: bool
) -> None:
    """The same through scripted detections and the real track store, as the edge drives it."""
    line = CountingLine(id="L1", points=[(0.0, 0.5), (1.0, 0.5)])
    ys = [0.2 + 0.6 * i / (frames - 1) for i in range(frames)]
    ys = (ys if downward else ys[::-1])[::skip]
    assume(len(ys) >= 2)
    if ys[-1] != (0.8 if downward else 0.2):
        ys.append(0.8 if downward else 0.2)  # a skipped last frame must not cut the path short
    store, counter = TrackStore(), LineCounter(line)
    out: list[Crossing] = []
    for i, y in enumerate(ys):
        t = i * skip / 10.0
        out += counter.update(store.update(dets([(1, "car", x, y)]), t, W, H), t)
    out += counter.flush()
    assert [c.positive for c in out] == [downward]
