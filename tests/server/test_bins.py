"""Bucket arithmetic in the site's time zone and the quality flag."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contract import HealthFlag
from server.history.bins import Quality, bucket_range, floor_bucket, offline_seconds, quality
from server.ingest.writer import HEALTH_BITS

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")


def test_day_buckets_start_at_local_midnight() -> None:
    b = floor_bucket(datetime(2026, 1, 1, 20, 0, tzinfo=UTC), "1d", HCM)
    assert b == datetime(2026, 1, 1, 17, 0, tzinfo=UTC)  # 00:00 on 2 Jan in Ho Chi Minh City


def test_dst_spring_day_is_23_hours() -> None:
    days = bucket_range(
        datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC), "1d", BERLIN
    )
    assert [(b2 - b1).total_seconds() / 3600 for b1, b2 in itertools.pairwise(days)] == [24.0, 23.0]


def test_range_rounds_outwards() -> None:
    got = bucket_range(
        datetime(2026, 1, 1, 0, 7, tzinfo=UTC), datetime(2026, 1, 1, 0, 31, tzinfo=UTC), "15m", HCM
    )
    assert [b.minute for b in got] == [0, 15, 30]


@pytest.mark.parametrize(
    ("covered", "flags", "n_bins", "want"),
    [
        pytest.param(3600, [], 60, Quality.OK, id="full"),
        pytest.param(0, [], 0, Quality.NO_DATA, id="nothing"),
        pytest.param(1200, [], 20, Quality.OFFLINE, id="third-covered"),
        pytest.param(3600, [HealthFlag.STREAM_DOWN], 60, Quality.OFFLINE, id="stream-down"),
        pytest.param(3600, [HealthFlag.FROZEN], 60, Quality.TAMPERING, id="frozen"),
        pytest.param(3600, [HealthFlag.LOW_FPS], 60, Quality.DEGRADED, id="low-fps"),
        pytest.param(3000, [], 50, Quality.DEGRADED, id="partly-covered"),
    ],
)
def test_quality(covered: float, flags: list[HealthFlag], n_bins: int, want: Quality) -> None:
    mask = sum(HEALTH_BITS[f] for f in flags)
    assert quality(covered, 3600, mask, n_bins) is want


def test_offline_seconds_from_status_timeline() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    starts = bucket_range(t0, t0 + timedelta(hours=3), "1h", HCM)
    ends = [*starts[1:], t0 + timedelta(hours=3)]
    events = [
        (t0 - timedelta(hours=5), "online"),
        (t0 + timedelta(minutes=30), "offline"),
        (t0 + timedelta(hours=1, minutes=45), "online"),
        (t0 + timedelta(hours=2, minutes=50), "offline"),
    ]
    assert offline_seconds(events, starts, ends) == [1800.0, 2700.0, 600.0]
    assert quality(0, 3600, 0, 0, offline_s=2700) is Quality.OFFLINE
    assert quality(3600, 3600, 0, 60, offline_s=2700) is Quality.OK  # bins say it was working
