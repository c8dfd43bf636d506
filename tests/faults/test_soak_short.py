"""`bench/soak.py --minutes 2`: four real cameras with the real model plus 1,000 counts messages/s.

Asserts what can fail in a soak: a process whose memory keeps growing, an ingest that falls behind and
does not catch up, messages dead-lettered, cameras that stop analysing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MODEL_PATH, VIDEOS, need_shared

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.model]

#: Generous: a leak of this size in two minutes would be hundreds of MB an hour.
GROWTH_MB = {"edge": 250.0, "server": 150.0, "broker": 100.0, "postgres": 150.0}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    need_shared(MODEL_PATH)
    need_shared(VIDEOS / "vn-hcmc-motorbikes-wrongway.mp4")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        pytest.skip("needs PostgreSQL's initdb/pg_ctl under /usr/lib/postgresql")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "2", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.stdout.strip(), f"no result (exit {proc.returncode}): {proc.stderr[-3000:]}"
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


@pytest.mark.parametrize("process", ["edge", "server", "broker", "postgres"])
def test_memory_does_not_run_away(result: dict[str, Any], process: str) -> None:
    mem = result["memory_mb"][process]
    key = "pss_mb" if process == "postgres" else "rss_mb"  # shared buffers count once in PSS
    assert mem["end"][key] > 0
    assert mem["end"][key] - mem["start"][key] < GROWTH_MB[process], mem


def test_ingest_keeps_up_and_drains(result: dict[str, Any]) -> None:
    assert result["load_stored"] > 0.5 * result["load_rate_msgs_per_s"] * result["minutes"] * 60
    assert result["load_unstored_after_drain"] == 0
    assert result["drain_s"] < 120
    assert result["dead_letters"] == {}
    assert result["heartbeat_ingest_lag_s"]["n"] > 0


def test_every_camera_analyses_and_reports(result: dict[str, Any]) -> None:
    assert len(result["cameras"]) == 4
    for cam, stats in result["cameras"].items():
        assert stats["heartbeats"] > 0, cam
        assert stats["mean_fps"] > 0, cam
        # Still alive at the end: heartbeats every 5 s, so a stale one means the camera thread died.
        assert stats["heartbeat_stale_s_at_end"] < 30, (cam, stats)
        assert stats["open_seq_gaps"] == 0, (cam, stats)
