"""Bucket arithmetic in the site's time zone, and the quality flag of a bucket. Pure, no I/O."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from contract import HealthFlag

Granularity = Literal["15m", "1h", "1d"]
TAMPERING = frozenset({HealthFlag.FROZEN, HealthFlag.BLACK, HealthFlag.BLURRED, HealthFlag.MOVED})
_BITS: dict[HealthFlag, int] = {flag: 1 << i for i, flag in enumerate(HealthFlag)}


class Quality(StrEnum):
    """How far a bucket's counts can be trusted (worst first)."""

    NO_DATA = "no_data"  # no count bins and no offline status: nothing is known (not a quiet street)
    OFFLINE = "offline"  # status offline for half the bucket, stream down, or under half covered
    TAMPERING = "tampering"  # frozen, black, blurred or moved view
    DEGRADED = "degraded"  # low frame rate, or part of the bucket missing
    OK = "ok"


def health_flags(mask: int) -> list[str]:
    return [str(flag) for flag, bit in _BITS.items() if mask & bit]


def quality(covered_s: float, expected_s: float, mask: int, n_bins: int, offline_s: float = 0.0) -> Quality:
    """The quality of a bucket from its coverage, the union of its bins' health flags and the time the
    camera's status history says it was offline (``offline_s``)."""
    coverage = covered_s / expected_s if expected_s > 0 else 0.0
    if offline_s >= 0.5 * expected_s and coverage < 0.95:
        return Quality.OFFLINE  # reported offline: not merely unknown
    if n_bins == 0:
        return Quality.NO_DATA
    if not mask:  # the common case, kept cheap: thousands of buckets per request
        return Quality.OK if coverage >= 0.95 else Quality.DEGRADED if coverage >= 0.5 else Quality.OFFLINE
    flags = {flag for flag, bit in _BITS.items() if mask & bit}
    if HealthFlag.STREAM_DOWN in flags or coverage < 0.5:
        return Quality.OFFLINE
    if flags & TAMPERING:
        return Quality.TAMPERING
    if HealthFlag.LOW_FPS in flags or coverage < 0.95:
        return Quality.DEGRADED
    return Quality.OK


def floor_bucket(ts: datetime, g: Granularity, tz: ZoneInfo) -> datetime:
    """The start (UTC) of the bucket holding ``ts``: 15 min in UTC, hours and days local."""
    if g == "15m":
        u = ts.astimezone(UTC)
        return u.replace(minute=u.minute - u.minute % 15, second=0, microsecond=0)
    local = ts.astimezone(tz)
    if g == "1h":
        # Hours are whole in UTC too for whole-hour zones; compute in UTC to survive DST folds.
        local = local.replace(minute=0, second=0, microsecond=0)
    else:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def next_bucket(start: datetime, g: Granularity, tz: ZoneInfo) -> datetime:
    if g == "15m":
        return start + timedelta(minutes=15)
    if g == "1h":
        return floor_bucket(start + timedelta(hours=1, minutes=30), g, tz)
    local = start.astimezone(tz)
    return floor_bucket((local + timedelta(days=1, hours=12)).replace(hour=0), g, tz)


def bucket_range(start: datetime, end: datetime, g: Granularity, tz: ZoneInfo) -> list[datetime]:
    """Bucket starts covering ``[start, end)``: start floored, end rounded up to a bucket edge."""
    out: list[datetime] = []
    b = floor_bucket(start, g, tz)
    while b < end:
        out.append(b)
        b = next_bucket(b, g, tz)
    return out


def offline_seconds(
    events: list[tuple[datetime, str]], starts: list[datetime], ends: list[datetime]
) -> list[float]:
    """Seconds of each bucket ``[starts[i], ends[i])`` during which the status timeline (``(ts, state)``
    sorted by time; the first may precede the range) was ``offline``."""
    out = [0.0] * len(starts)
    if not events or not starts:
        return out
    horizon = ends[-1]
    for (t, state), nxt in zip(events, [*events[1:], (horizon, "")], strict=True):
        if state != "offline":
            continue
        lo, hi = t, min(nxt[0], horizon)
        i = bisect.bisect_right(ends, lo)
        while i < len(starts) and starts[i] < hi:
            overlap = (min(hi, ends[i]) - max(lo, starts[i])).total_seconds()
            if overlap > 0:
                out[i] += overlap
            i += 1
    return out
