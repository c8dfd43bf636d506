"""``citywatch demo --history DAYS``: past count bins for the demo, so the planner and open-data pages
are not empty on a fresh start.

Each camera's clip is replayed once through the real edge pipeline (``citywatch edge replay``; the
result is cached under the demo folder, keyed by clip, model and counting lines). Its counts per line,
direction and class become rates, spread over a daily traffic profile (two rush hours, quiet nights,
lighter weekends) with Poisson noise, in 15-minute bins. Every such bin is stored with
``sample = true``, and only in whole local days before the first real bin of its camera (and before
today), so no hour or day ever holds both sample and live counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from citywatch.site import Camera, FileSource, SiteConfig

log = logging.getLogger(__name__)

BIN = timedelta(minutes=15)
EDGE_ID = "demo-history"
#: Relative traffic by local hour of day (daytime mean about 1: the clips are daytime scenes).
PROFILE = (0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.7, 1.3, 1.4, 1.0, 0.9, 0.95,
           1.0, 0.95, 0.9, 1.0, 1.2, 1.45, 1.35, 1.0, 0.8, 0.6, 0.4, 0.25)  # fmt: skip
WEEKDAY = (1.0, 1.0, 1.0, 1.0, 1.05, 0.85, 0.7)  # Monday .. Sunday


class HistoryError(Exception):
    """The history could not be made (a replay failed); the message says why."""


@dataclass(frozen=True, slots=True)
class ClipRates:
    """Counts per second of each (line, direction, class) seen in one pass over a clip."""

    seconds: float
    per_s: dict[tuple[str, str, str], float]


def rates_from_replay(doc: dict[str, Any]) -> ClipRates:
    """Rates from the JSON of ``citywatch edge replay`` (its counts messages). Pure."""
    totals: dict[tuple[str, str, str], int] = {}
    seconds = 0.0
    for m in doc["messages"]:
        p = m["payload"]
        if p.get("kind") != "counts":
            continue
        seconds += (
            datetime.fromisoformat(p["bin_end"]) - datetime.fromisoformat(p["bin_start"])
        ).total_seconds()
        for c in p.get("lines", []):
            key = (c["line_id"], c["direction"], c["cls"])
            totals[key] = totals.get(key, 0) + int(c["count"])
    if seconds <= 0:
        return ClipRates(0.0, {})
    return ClipRates(seconds, {k: v / seconds for k, v in totals.items()})


def _poisson(rnd: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation, plenty for traffic counts
        return max(0, round(rnd.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k
        k += 1


def synth_bins(
    rates: ClipRates, start: datetime, end: datetime, tz: ZoneInfo, seed: int
) -> Iterator[tuple[datetime, dict[tuple[str, str, str], int]]]:
    """15-minute bins in ``[start, end)`` (UTC): each cell's rate times the profile, Poisson noise."""
    rnd = random.Random(seed)
    t = start
    while t < end:
        local = t.astimezone(tz)
        factor = PROFILE[local.hour] * WEEKDAY[local.weekday()]
        cells = {k: _poisson(rnd, r * BIN.total_seconds() * factor) for k, r in sorted(rates.per_s.items())}
        yield t, {k: v for k, v in cells.items() if v}
        t += BIN


def _cache_key(cam: Camera, clip: Path) -> str:
    st = clip.stat()
    lines = [ln.model_dump(mode="json") for ln in cam.lines]
    raw = json.dumps(
        [str(clip.resolve()), st.st_size, st.st_mtime_ns, cam.detector.model, lines], sort_keys=True
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def clip_rates(site_path: Path, cam: Camera, cache_dir: Path) -> ClipRates | None:
    """The camera's clip replayed once (or its cached result); None for a camera without a clip."""
    if not isinstance(cam.source, FileSource) or not cam.lines:
        return None
    clip = Path(cam.source.path)
    if not clip.exists():
        raise HistoryError(f"camera {cam.id}: clip {clip} not found")
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"{cam.id}-{_cache_key(cam, clip)}.json"
    if cached.exists():
        doc = json.loads(cached.read_text(encoding="utf-8"))
        return ClipRates(doc["seconds"], {tuple(k.split("\t")): v for k, v in doc["per_s"].items()})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "replay.json"
        cmd = [sys.executable, "-m", "citywatch.cli", "--log-level", "WARNING", "edge", "replay", str(clip),
               "--site", str(site_path), "--camera", cam.id, "--json", str(out)]  # fmt: skip
        nice = shutil.which("nice")
        if nice:  # behind the live demo for the CPU
            cmd = [nice, "-n", "10", *cmd]
        log.info("demo history: replaying %s once for camera %s", clip.name, cam.id)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=dict(os.environ))
        if done.returncode != 0:
            raise HistoryError(f"camera {cam.id}: replay of {clip.name} failed: {done.stderr[-500:]}")
        rates = rates_from_replay(json.loads(out.read_text(encoding="utf-8")))
    per_s = {"\t".join(k): v for k, v in rates.per_s.items()}
    cached.write_text(json.dumps({"seconds": rates.seconds, "per_s": per_s}), encoding="utf-8")
    return rates


def history_window(
    today: date, days: int, first_bin: datetime | None, tz: ZoneInfo
) -> tuple[datetime, datetime]:
    """Whole local days ``[today - days, today)``, cut at the day of the camera's first stored bin."""
    end_day = today if first_bin is None else min(today, first_bin.astimezone(tz).date())
    start = datetime.combine(today - timedelta(days=days), datetime.min.time(), tz)
    end = datetime.combine(end_day, datetime.min.time(), tz)
    return start.astimezone(UTC), max(start, end).astimezone(UTC)


def _messages(
    site: SiteConfig, cam: Camera, bins: Iterator[tuple[datetime, dict[tuple[str, str, str], int]]]
) -> list[Any]:
    from contract import CountsMessage, DirectionCount  # noqa: PLC0415

    out = []
    for seq, (b, cells) in enumerate(bins):
        lines = [DirectionCount(line_id=k[0], direction=k[1], cls=k[2], count=v) for k, v in cells.items()]
        out.append(
            CountsMessage(
                msg_id=uuid.uuid4(), site_id=site.site.id, edge_id=EDGE_ID, camera_id=cam.id, seq=seq,
                ts=b + BIN, bin_start=b, bin_end=b + BIN, frames=int(BIN.total_seconds() * 10), fps=10.0,
                lines=lines,
            )
        )  # fmt: skip
    return out


_SAMPLE = "UPDATE count_bins SET sample = true WHERE camera_id = %s AND bin_start >= %s AND bin_start < %s"
_SPAN = (
    "INSERT INTO sample_spans (camera_id, first_bin, end_bin) VALUES (%s, %s, %s) ON CONFLICT (camera_id) "
    "DO UPDATE SET first_bin = least(sample_spans.first_bin, excluded.first_bin), "
    "end_bin = greatest(sample_spans.end_bin, excluded.end_bin)"
)
_LIVE_RESTORE = "INSERT INTO camera_live SELECT * FROM jsonb_populate_record(NULL::camera_live, %s)"


def _store(conn: Any, writer: Any, cam_id: str, msgs: list[Any], start: datetime, end: datetime) -> None:
    """Write the bins through the server's writer (rollups on either backend), flag them as sample,
    and leave the camera's sequence tracking and live-map state as they were: in one transaction."""
    from psycopg.types.json import Jsonb  # noqa: PLC0415

    from contract import dump_message  # noqa: PLC0415
    from server.ingest.validate import Accepted, Incoming  # noqa: PLC0415

    with conn.transaction():
        seq = conn.execute("SELECT max_seq FROM camera_seq WHERE camera_id = %s", (cam_id,)).fetchone()
        live = conn.execute(
            "SELECT to_jsonb(l) FROM camera_live l WHERE camera_id = %s", (cam_id,)
        ).fetchone()
        for i in range(0, len(msgs), 500):
            part = msgs[i : i + 500]
            writer.write(
                conn, [Accepted(Incoming(1, 1, "demo/history", dump_message(m), 0.0), m) for m in part]
            )
        conn.execute(_SAMPLE, (cam_id, start, end))
        conn.execute(_SPAN, (cam_id, start, end))
        conn.execute("DELETE FROM seq_gaps WHERE camera_id = %s AND opened_at >= now()", (cam_id,))
        if seq is None:
            conn.execute("DELETE FROM camera_seq WHERE camera_id = %s", (cam_id,))
        else:
            conn.execute("UPDATE camera_seq SET max_seq = %s WHERE camera_id = %s", (seq[0], cam_id))
        conn.execute("DELETE FROM camera_live WHERE camera_id = %s", (cam_id,))
        if live is not None:
            conn.execute(_LIVE_RESTORE, (Jsonb(live[0]),))


def fill_history(db_url: str, site: SiteConfig, site_path: Path, days: int, cache_dir: Path) -> int:
    """Write the sample history of every camera that has none yet; returns the bins written."""
    import psycopg  # noqa: PLC0415

    # The demo runs the server anyway; its writer keeps the rollups right on either backend.
    from server.db.migrate import storage_backend  # noqa: PLC0415
    from server.ingest.writer import BatchWriter  # noqa: PLC0415

    tz = ZoneInfo(site.site.timezone)
    today = datetime.now(tz).date()
    written = 0
    # Two replays at a time: each is a subprocess with its own model.
    with ThreadPoolExecutor(max_workers=2) as pool:
        all_rates = list(pool.map(lambda cam: clip_rates(site_path, cam, cache_dir), site.cameras))
    with psycopg.connect(db_url, autocommit=True) as conn:
        writer = BatchWriter(storage_backend(conn), site.site.timezone)
        for n, (cam, rates) in enumerate(zip(site.cameras, all_rates, strict=True)):
            if rates is None or not rates.per_s:
                continue
            row = conn.execute(
                "SELECT min(bin_start), bool_or(sample) FROM count_bins WHERE camera_id = %s", (cam.id,)
            ).fetchone()
            if row is not None and row[1]:
                continue  # this camera has its history already
            start, end = history_window(today, days, row[0] if row else None, tz)
            msgs = _messages(site, cam, synth_bins(rates, start, end, tz, seed=n + 1))
            if msgs:
                _store(conn, writer, cam.id, msgs, start, end)
                written += len(msgs)
                log.info(
                    "demo history: camera %s, %d sample bins from %s to %s", cam.id, len(msgs), start, end
                )
    return written
