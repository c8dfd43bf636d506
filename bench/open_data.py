"""Open-data benchmark: one local day of every camera from the public API (``/open/v1/flow``, cached)
side by side with the authenticated history query for the same data (``/api/v1/history/volume``),
both over real HTTP against one in-process server, on generated 5-minute bins.

    python bench/open_data.py --json                  # 20 cameras x 16 cells, yesterday's 24 hours
    python bench/open_data.py --cameras 50 --json

Prints p50/p95 per case; ``p95_ms`` at the top level is the public CSV of the day from cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from _common import (
    CELLS,
    DEFAULT_DATABASE_URL,
    create_database,
    drop_database,
    free_port,
    percentiles,
    write_site,
)
from history import TZ, generate

from citywatch.site import load_site
from server.app import create_app
from server.auth.users import create_api_key
from server.settings import Settings


def _serve(url: str, site_path: Path, port: int) -> uvicorn.Server:
    settings = Settings.from_env(
        {"DATABASE_URL": url, "CITYWATCH_SITE": str(site_path), "CITYWATCH_TIMESCALE": "off"}
    )
    app = create_app(settings, load_site(site_path), ingest=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server


def _time(client: httpx.Client, path: str, params: dict[str, Any], n: int) -> tuple[dict[str, float], int]:
    times = []
    size = 0
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        size = len(r.content)
    out = {k: v for k, v in percentiles(times).items() if k in ("p50_ms", "p95_ms", "n")}
    return out, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="admin DSN")
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=200, help="timed requests per cached case")
    ap.add_argument("--history-repeat", type=int, default=30, help="timed history requests")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tz = ZoneInfo(TZ)
    today = datetime.now(tz).date()
    day = today - timedelta(days=1)
    end = datetime.combine(today, datetime.min.time(), tz).astimezone(UTC)
    url, _ = create_database(args.database_url)
    try:
        gen = generate(url, args.cameras, 2, 5, end)
        cams = [f"cam-{i:03d}" for i in range(args.cameras)]
        with tempfile.TemporaryDirectory() as tmp:
            site_path = write_site(Path(tmp), "bench", "bench", cams)
            with site_path.open("a", encoding="utf-8") as f:
                f.write("open_data: {rate_per_min: 100000, k: 5}\n")
            key = create_api_key(url, "bench-open-data", "planner", "bench")
            port = free_port()
            server = _serve(url, site_path, port)
            try:
                results: dict[str, Any] = {}
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                    public = {"bin": "1h", "date": day.isoformat()}
                    cases: dict[str, dict[str, Any]] = {
                        "open_csv": {**public, "format": "csv"},
                        "open_parquet": {**public, "format": "parquet"},
                        "open_ngsi_ld_keyvalues": {**public, "options": "keyValues", "limit": 5000},
                    }
                    for name, params in cases.items():
                        t = time.perf_counter()
                        c.get("/open/v1/flow", params=params).raise_for_status()  # fills the cache
                        cold = round((time.perf_counter() - t) * 1000, 2)
                        stats, size = _time(c, "/open/v1/flow", params, args.repeat)
                        results[name] = {**stats, "cold_ms": cold, "bytes": size}
                    lo = datetime.combine(day, datetime.min.time(), tz)
                    hist = {"start": lo.isoformat(), "end": (lo + timedelta(days=1)).isoformat(), "bin": "1h"}
                    c.headers["Authorization"] = f"Bearer {key}"
                    for fmt in ("json", "csv"):
                        stats, size = _time(
                            c, "/api/v1/history/volume", {**hist, "format": fmt}, args.history_repeat
                        )
                        results[f"history_{fmt}"] = {**stats, "bytes": size}
            finally:
                server.should_exit = True
    finally:
        drop_database(args.database_url, url)
    out = {
        "p95_ms": results["open_csv"]["p95_ms"],
        "config": {"cameras": args.cameras, "cells_per_bin": len(CELLS), "day": day.isoformat(), "bin": "1h"},
        "generation": gen,
        "cases": results,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
