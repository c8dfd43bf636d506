"""Generated counts for the open-data tests: common and rare classes, from two local days ago up to
now, so the publication delay and the k rule both have something to act on."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from contract import CountsMessage
from server.history.bins import Granularity, floor_bucket
from tests.server.helpers import counts, write_site

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LINES = (("L1", ("north", "south")), ("L2", ("east", "west")))
#: class -> (low, high) per 5-minute bin; bus/truck/bicycle/person are rare, so many hours hold 1..k-1.
RATES = {"car": (2, 9), "motorcycle": (5, 20), "bus": (0, 1), "truck": (0, 1), "bicycle": (0, 1),
         "person": (0, 2)}  # fmt: skip
RARE_P = {"bus": 0.1, "truck": 0.05, "bicycle": 0.15, "person": 0.3}


def start_of_data(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(TZ).date() - timedelta(days=2), datetime.min.time(), TZ)


def generate(site_id: str, cams: Sequence[str], now: datetime, seed: int = 11) -> list[CountsMessage]:
    rnd = random.Random(seed)
    t = start_of_data(now).astimezone(UTC)
    end = now.astimezone(UTC) - timedelta(minutes=5)
    out: list[CountsMessage] = []
    seq = dict.fromkeys(cams, 0)
    while t < end:
        for cam in cams:
            seq[cam] += 1
            cells: dict[tuple[str, str, str], int] = {}
            for line, dirs in LINES:
                for d in dirs:
                    for cls, (lo, hi) in RATES.items():
                        if cls in RARE_P and rnd.random() > RARE_P[cls]:
                            continue
                        cells[(line, d, cls)] = rnd.randint(lo, hi)
            out.append(counts(site_id, cam, seq[cam], t, cells, bin_s=300, ts=t + timedelta(seconds=2)))
        t += timedelta(minutes=5)
    return out


def expected(msgs: Sequence[CountsMessage], g: Granularity) -> dict[tuple[Any, ...], int]:
    """(camera, bucket UTC, line, direction, class) -> count, from the messages (non-zero only)."""
    out: dict[tuple[Any, ...], int] = defaultdict(int)
    for m in msgs:
        b = floor_bucket(m.bin_start, g, TZ)
        for c in m.lines:
            out[(m.camera_id, b, c.line_id, c.direction, c.cls)] += c.count
    return {k: v for k, v in out.items() if v}


def site_file(folder: Path, site_id: str, cams: list[str], open_data: str) -> Path:
    path = write_site(folder, site_id, "citywatch", cams)
    path.write_text(path.read_text(encoding="utf-8") + open_data, encoding="utf-8")
    return path
