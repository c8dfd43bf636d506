"""Plane geometry against an exact reference.

Coordinates are drawn on a 1/64 grid, where float arithmetic on them is exact, so the float code must
agree with exact rational arithmetic, and degenerate cases (collinear edges, a ray through a vertex,
touching endpoints) come up often. The reference for point-in-polygon is the winding number (a
different algorithm): a point is inside under the even-odd rule exactly when it is odd.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from citywatch.geometry import (
    PointT,
    cross,
    point_in_polygon,
    polygon_area,
    polygon_self_intersection,
    segments_intersect,
)

GRID = 64
coord = st.integers(min_value=-GRID, max_value=2 * GRID).map(lambda k: k / GRID)
points = st.tuples(coord, coord)
polygons = st.lists(points, min_size=3, max_size=8)

FracPoint = tuple[Fraction, Fraction]


def exact(p: PointT) -> FracPoint:
    return Fraction(p[0]), Fraction(p[1])


def exact_cross(a: PointT, b: PointT, p: PointT) -> Fraction:
    (ax, ay), (bx, by), (px, py) = exact(a), exact(b), exact(p)
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def on_segment(a: PointT, b: PointT, p: PointT) -> bool:
    """Exactly on the closed segment a-b."""
    if exact_cross(a, b, p) != 0:
        return False
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def reference_intersect(p1: PointT, p2: PointT, q1: PointT, q2: PointT) -> bool:
    """Exact: do the closed segments share a point? By parametric solution, not orientation tests."""
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = exact(p1), exact(p2), exact(q1), exact(q2)
    rx, ry, sx, sy = bx - ax, by - ay, dx - cx, dy - cy
    denom = rx * sy - ry * sx
    if denom != 0:
        t = ((cx - ax) * sy - (cy - ay) * sx) / denom
        u = ((cx - ax) * ry - (cy - ay) * rx) / denom
        return 0 <= t <= 1 and 0 <= u <= 1
    # Parallel (or a point): they meet only if some endpoint lies on the other segment.
    return any(
        (on_segment(p1, p2, q1), on_segment(p1, p2, q2), on_segment(q1, q2, p1), on_segment(q1, q2, p2))
    )


def winding_number(p: PointT, polygon: list[PointT]) -> int:
    """Sunday's winding number, exact."""
    wn = 0
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if a[1] <= p[1] < b[1] and exact_cross(a, b, p) > 0:
            wn += 1  # an edge crossing p's horizontal line one way, with p on one side of it
        elif b[1] <= p[1] < a[1] and exact_cross(a, b, p) < 0:
            wn -= 1  # the other way, p on the other side: the same ray, the opposite sense
    return wn


def on_boundary(p: PointT, polygon: list[PointT]) -> bool:
    return any(on_segment(polygon[i], polygon[(i + 1) % len(polygon)], p) for i in range(len(polygon)))


@settings(max_examples=500, deadline=None)
@given(points, points, points)
def test_cross_is_exact_on_the_grid(a: PointT, b: PointT, p: PointT) -> None:
    assert cross(a, b, p) == exact_cross(a, b, p)


@settings(max_examples=1000, deadline=None)
@given(points, points, points, points)
def test_segments_intersect_matches_the_exact_reference(
    p1: PointT, p2: PointT, q1: PointT, q2: PointT
) -> None:
    want = reference_intersect(p1, p2, q1, q2)
    assert segments_intersect(p1, p2, q1, q2) is want
    # Symmetric in the two segments and in each segment's direction.
    assert segments_intersect(q1, q2, p1, p2) is want
    assert segments_intersect(p2, p1, q2, q1) is want


@settings(max_examples=1000, deadline=None)
@given(points, polygons)
def test_point_in_polygon_matches_the_winding_number_parity(p: PointT, polygon: list[PointT]) -> None:
    assume(not on_boundary(p, polygon))  # the boundary belongs to either side by convention
    assert point_in_polygon(p, polygon) is (winding_number(p, polygon) % 2 == 1)


@settings(max_examples=300, deadline=None)
@given(points, polygons, st.integers(min_value=0, max_value=7), points)
def test_point_in_polygon_ignores_start_vertex_orientation_and_translation(
    p: PointT, polygon: list[PointT], shift: int, offset: PointT
) -> None:
    assume(not on_boundary(p, polygon))
    inside = point_in_polygon(p, polygon)
    k = shift % len(polygon)
    assert point_in_polygon(p, polygon[k:] + polygon[:k]) is inside
    assert point_in_polygon(p, polygon[::-1]) is inside
    dx, dy = offset
    moved = [(x + dx, y + dy) for x, y in polygon]
    assert point_in_polygon((p[0] + dx, p[1] + dy), moved) is inside


@settings(max_examples=300, deadline=None)
@given(polygons, st.integers(min_value=0, max_value=7))
def test_area_is_the_exact_shoelace_and_ignores_vertex_order(polygon: list[PointT], shift: int) -> None:
    n = len(polygon)
    twice: Fraction = sum(
        (
            Fraction(polygon[i][0]) * Fraction(polygon[(i + 1) % n][1])
            - Fraction(polygon[(i + 1) % n][0]) * Fraction(polygon[i][1])
            for i in range(n)
        ),
        Fraction(0),
    )
    assert polygon_area(polygon) == abs(twice) / 2
    k = shift % n
    assert polygon_area(polygon[k:] + polygon[:k]) == polygon_area(polygon[::-1]) == polygon_area(polygon)


def reference_self_intersection(polygon: list[PointT]) -> bool:
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    return any(
        reference_intersect(*edges[i], *edges[j])
        for i in range(n)
        for j in range(i + 2, n)
        if not (i == 0 and j == n - 1)
    )


@settings(max_examples=500, deadline=None)
@given(polygons, st.integers(min_value=0, max_value=7))
def test_self_intersection_matches_the_reference_whatever_the_start_vertex(
    polygon: list[PointT], shift: int
) -> None:
    want = reference_self_intersection(polygon)
    assert (polygon_self_intersection(polygon) is not None) is want
    k = shift % len(polygon)
    assert (polygon_self_intersection(polygon[k:] + polygon[:k]) is not None) is want
    assert (polygon_self_intersection(polygon[::-1]) is not None) is want
