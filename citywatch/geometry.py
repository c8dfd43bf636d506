"""Plane geometry on normalized image points, shared by config validation and edge analytics."""

from __future__ import annotations

from collections.abc import Sequence

PointT = tuple[float, float]


def cross(a: PointT, b: PointT, p: PointT) -> float:
    """z of (b - a) x (p - a): > 0 when ``p`` is to the right of a->b in image coordinates (y down)."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _on_segment(a: PointT, b: PointT, p: PointT) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(p1: PointT, p2: PointT, q1: PointT, q2: PointT) -> bool:
    """Whether closed segments p1-p2 and q1-q2 share a point."""
    d1 = cross(q1, q2, p1)
    d2 = cross(q1, q2, p2)
    d3 = cross(p1, p2, q1)
    d4 = cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )


def polygon_self_intersection(points: Sequence[PointT]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges that intersect, or None for a simple polygon."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a vertex by construction
            if segments_intersect(*edges[i], *edges[j]):
                return i, j
    return None


def polygon_area(points: Sequence[PointT]) -> float:
    """Unsigned area (shoelace)."""
    n = len(points)
    s = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n))
    return abs(s) / 2.0


def point_in_polygon(p: PointT, points: Sequence[PointT]) -> bool:
    """Even-odd ray casting."""
    x, y = p
    inside = False
    n = len(points)
    j = n - 1
    for i in range(n):
        xi, yi = points[i]
        xj, yj = points[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside
