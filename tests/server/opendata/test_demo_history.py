"""``citywatch demo --history``: sample bins from a real replay of a shared clip, spread over a daily
profile, flagged as sample, in whole days before any live bin, and never written twice."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citywatch.demo_history import (
    ClipRates,
    fill_history,
    history_window,
    rates_from_replay,
    synth_bins,
)
from citywatch.site import load_site
from server.db.migrate import migrate
from server.history import queries
from server.ingest.writer import BatchWriter
from tests.conftest import MODEL_PATH, ROOT, SHARED, need_shared
from tests.server.helpers import counts
from tests.server.history_data import store

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
RATES = ClipRates(60.0, {("L1", "north", "car"): 0.5, ("L1", "south", "bus"): 0.01})


def _counts(start_s: int, n: int) -> dict[str, object]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=start_s)
    line = {"line_id": "L1", "direction": "n", "cls": "car", "count": n}
    payload = {
        "kind": "counts",
        "bin_start": t0.isoformat(),
        "bin_end": (t0 + timedelta(seconds=10)).isoformat(),
    }
    return {"payload": {**payload, "lines": [line]}}


def test_rates_come_from_the_replayed_counts() -> None:
    doc = {"messages": [_counts(0, 4), {"payload": {"kind": "heartbeat"}}, _counts(10, 6)]}
    r = rates_from_replay(doc)
    assert r.seconds == 20
    assert r.per_s == {("L1", "n", "car"): 0.5}


def test_bins_follow_the_daily_profile_and_repeat() -> None:
    start = datetime(2026, 11, 2, tzinfo=TZ).astimezone(UTC)  # a Monday
    bins = list(synth_bins(RATES, start, start + timedelta(days=7), TZ, seed=1))
    assert len(bins) == 7 * 96
    by_hour: dict[int, int] = {}
    for b, cells in bins:
        h = b.astimezone(TZ).hour
        by_hour[h] = by_hour.get(h, 0) + cells.get(("L1", "north", "car"), 0)
    assert by_hour[8] > 5 * by_hour[3]  # morning rush against the small hours
    assert by_hour[17] > 5 * by_hour[2]
    assert bins == list(synth_bins(RATES, start, start + timedelta(days=7), TZ, seed=1))


@pytest.mark.parametrize(
    ("first_bin", "want_end"),
    [(None, "2026-11-20"), (datetime(2026, 11, 18, 15, tzinfo=TZ), "2026-11-18"),
     (datetime(2026, 12, 1, tzinfo=TZ), "2026-11-20")],
    ids=["no-live-data", "live-data-cuts-the-history", "live-data-after-today"],
)  # fmt: skip
def test_history_is_whole_days_before_live_data(first_bin: datetime | None, want_end: str) -> None:
    start, end = history_window(datetime(2026, 11, 20).date(), 5, first_bin, TZ)
    assert start == datetime(2026, 11, 15, tzinfo=TZ)
    assert end == datetime.fromisoformat(want_end).replace(tzinfo=TZ)


@pytest.mark.integration
@pytest.mark.model
def test_fill_from_a_real_clip(fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_shared(SHARED / "videos" / "vn-hcmc-motorbikes-wrongway.mp4")
    need_shared(MODEL_PATH)
    monkeypatch.setenv("CITYWATCH_VIDEO_DIR", str(SHARED / "videos"))
    monkeypatch.setenv("CITYWATCH_MODEL", str(MODEL_PATH))
    site_path = ROOT / "config" / "quynhon.yaml"
    full = load_site(site_path)
    site = full.model_copy(update={"cameras": [full.cameras[0]]})  # the 7 s Hồ Chí Minh clip
    cam = site.cameras[0].id
    live_at = datetime.now(TZ).replace(hour=0, minute=5, second=0, microsecond=0)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone, "off")
        store(
            conn,
            BatchWriter("plain", site.site.timezone),
            [counts(site.site.id, cam, 41, live_at.astimezone(UTC))],
        )
    n = fill_history(fresh_db, site, site_path, 3, tmp_path / "cache")
    assert n == 3 * 96
    midnight = live_at.replace(minute=0)
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT bin_start, sample FROM count_bins WHERE camera_id = %s", (cam,)
        ).fetchall()
        total = conn.execute(
            "SELECT sum(count) FROM counts WHERE camera_id = %s AND bin_start < %s", (cam, midnight)
        ).fetchone()
        seq = conn.execute("SELECT max_seq FROM camera_seq WHERE camera_id = %s", (cam,)).fetchone()
        hourly = conn.execute(
            "SELECT sum(count) FROM counts_1h WHERE camera_id = %s AND bucket < %s", (cam, midnight)
        ).fetchone()
    sample = [b for b, s in rows if s]
    assert len(sample) == n
    assert all(b < midnight for b in sample)
    assert [b for b, s in rows if not s] == [live_at]  # the live bin is not sample
    assert total is not None and total[0] > 0  # the clip's vehicles, spread over three days
    assert hourly is not None and hourly[0] == total[0]  # the rollups hold them too
    assert seq == (41,)  # the camera's sequence tracking is untouched
    # the planner's history marks those buckets as sample, and only those
    hist = asyncio.run(_hourly(fresh_db, cam, midnight - timedelta(days=1), midnight + timedelta(hours=2)))
    assert {b for b, s in hist if s} == {midnight - timedelta(hours=h) for h in range(1, 25)}
    assert {b for b, s in hist if not s} == {midnight, midnight + timedelta(hours=1)}
    # once is enough: a second run writes nothing and replays nothing (cached)
    t0 = time.monotonic()
    assert fill_history(fresh_db, site, site_path, 3, tmp_path / "cache") == 0
    assert time.monotonic() - t0 < 5
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


async def _hourly(url: str, cam: str, start: datetime, end: datetime) -> set[tuple[datetime, bool]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await queries.volume(conn, cameras=[cam], start=start, end=end, g="1h", tz=TZ, dims=())
    return {(r.bucket, r.sample) for r in rows}
