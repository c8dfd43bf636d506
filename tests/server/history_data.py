"""Deterministic count data for the history tests, and the answers computed in Python from it."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from contract import CountsMessage, HealthFlag, dump_message
from server.history.bins import Granularity, floor_bucket
from server.ingest.validate import Accepted, Incoming
from server.ingest.writer import BatchWriter
from tests.server.helpers import counts

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
#: Local midnight, 20 Nov 2026.
START = datetime(2026, 11, 20, tzinfo=TZ)
CELLS = [(ln, d, c) for ln, dirs in (("L1", ("north", "south")), ("L2", ("east", "west"))) for d in dirs
         for c in ("car", "motorcycle")]  # fmt: skip
DEAD_CAMERA_HOURS = (10, 14)  # local hours of day 2 when the third camera sent nothing
LOW_FPS_HOUR = 8  # local hour of day 1 when the second camera ran slowly


def generate(site_id: str, cams: Sequence[str], days: int = 2, seed: int = 7) -> list[CountsMessage]:
    """5-minute bins; the third camera is dead for a few hours, the second has a low-fps hour."""
    rnd = random.Random(seed)
    out: list[CountsMessage] = []
    seqs = dict.fromkeys(cams, 0)
    for i in range(days * 288):
        t = START + timedelta(minutes=5 * i)
        local = t.astimezone(TZ)
        for k, cam in enumerate(cams):
            if (
                k == 2
                and local.day == START.day + 1
                and DEAD_CAMERA_HOURS[0] <= local.hour < DEAD_CAMERA_HOURS[1]
            ):
                continue
            seqs[cam] += 1
            health = (
                [HealthFlag.LOW_FPS]
                if k == 1 and local.day == START.day and local.hour == LOW_FPS_HOUR
                else []
            )
            cells = {cell: rnd.randint(0, 5) for cell in CELLS}
            out.append(
                counts(
                    site_id, cam, seqs[cam], t, cells, bin_s=300, health=health, ts=t + timedelta(seconds=3)
                )
            )
    return out


def store(
    conn: psycopg.Connection[Any], writer: BatchWriter, msgs: Sequence[CountsMessage], chunk: int = 150
) -> None:
    for i in range(0, len(msgs), chunk):
        part = msgs[i : i + chunk]
        writer.write(
            conn,
            [Accepted(Incoming(1, 1, "t", dump_message(m), time.time()), m) for m in part],
        )


def expected_volume(
    msgs: Sequence[CountsMessage], g: Granularity, dims: Sequence[str] = ("line_id", "direction", "cls")
) -> dict[tuple[Any, ...], int]:
    """Sums straight from the messages: (camera, bucket, *dims) -> count (non-zero only)."""
    out: dict[tuple[Any, ...], int] = defaultdict(int)
    for m in msgs:
        b = floor_bucket(m.bin_start, g, TZ)
        for c in m.lines:
            full = {"line_id": c.line_id, "direction": c.direction, "cls": c.cls}
            out[
                (m.camera_id, b, *(full[d] if d in dims else None for d in ("line_id", "direction", "cls")))
            ] += c.count
    return {k: v for k, v in out.items() if v}
