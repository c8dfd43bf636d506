"""Bucket arithmetic in the site's time zone, and the quality flag of a bucket. Pure, no I/O."""

from __future__ import annotations

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

    NO_DATA = "no_data"  # no count bins at all: the camera or its edge was down (not a quiet street)
    OFFLINE = "offline"  # stream down, or less than half the bucket covered
    TAMPERING = "tampering"  # frozen, black, blurred or moved view
    DEGRADED = "degraded"  # low frame rate, or part of the bucket missing
    OK = "ok"


def health_flags(mask: int) -> list[str]:
    return [str(flag) for flag, bit in _BITS.items() if mask & bit]


def quality(covered_s: float, expected_s: float, mask: int, n_bins: int) -> Quality:
    """The quality of a bucket from its coverage and the union of its bins' health flags."""
    if n_bins == 0:
        return Quality.NO_DATA
    flags = {flag for flag, bit in _BITS.items() if mask & bit}
    coverage = covered_s / expected_s if expected_s > 0 else 0.0
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
