"""Live map in a real headless Chromium against the real server, broker and database.

1. publish -> marker: 50 incidents, one at a time; the page records (MutationObserver) when each
   incident's marker is in the DOM; latency = that time minus the publish time (same host clock).
2. page load: the map with 200 cameras and 500 open incidents, from navigation until every camera and
   incident marker is drawn (median of 3 loads; the session token is put in sessionStorage beforehand).
3. 1,000 count updates/s for 20 s (5 per camera per second, each a new count bin, so every one changes
   the camera's live state): main-thread responsiveness in the page, measured by a requestAnimationFrame
   probe (frames/s, longest gap between frames) and long tasks, side by side with the same probe on the
   idle page just before.

    python bench/map_latency.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from _common import DEFAULT_DATABASE_URL, create_database, drop_database
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import sync_playwright

from contract import (
    CountsMessage,
    DirectionCount,
    IncidentEvent,
    IncidentMessage,
    IncidentType,
    Severity,
    StatusMessage,
    StreamState,
    dump_message,
    topic_for,
)
from server.auth.users import create_user

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "bench password 123"
CENTER = (13.77, 109.22)

PROBE = """
() => {
  const s = { frames: [], longTasks: [] };
  const loop = (t) => { s.frames.push(t); if (!s.stop) requestAnimationFrame(loop); };
  requestAnimationFrame(loop);
  try {
    s.obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) s.longTasks.push(e.duration); });
    s.obs.observe({ type: "longtask", buffered: false });
  } catch (e) { s.noLongTask = true; }
  const m = window.citywatchMapStats;
  s.start = { ...m };
  window.__probe = s;
}
"""
PROBE_READ = """
() => {
  const s = window.__probe; s.stop = true; s.obs && s.obs.disconnect();
  const f = s.frames; const gaps = [];
  for (let i = 1; i < f.length; i++) gaps.push(f[i] - f[i - 1]);
  gaps.sort((a, b) => a - b);
  const m = window.citywatchMapStats;
  const dur = (f[f.length - 1] - f[0]) / 1000;
  return {
    seconds: dur, fps: (f.length - 1) / dur, max_frame_gap_ms: gaps[gaps.length - 1],
    p99_frame_gap_ms: gaps[Math.floor(gaps.length * 0.99)],
    long_tasks: s.longTasks.length, long_task_ms: s.longTasks.reduce((a, b) => a + b, 0),
    ws_messages: m.messages - s.start.messages,
    camera_updates_applied: m.cameraUpdates - s.start.cameraUpdates,
    renders: m.renders - s.start.renders,
    mean_render_ms: (m.renderMs - s.start.renderMs) / Math.max(1, m.renders - s.start.renders),
    max_render_ms_since_load: m.maxRenderMs,
  };
}
"""
SEEN = """
() => {
  window.__seen = {};
  const mark = (el, now) => {
    const id = el.getAttribute && el.getAttribute("data-incident");
    if (id && !(id in window.__seen)) window.__seen[id] = now;
  };
  new MutationObserver((muts) => {
    const now = Date.now();
    for (const m of muts) {
      if (m.type === "attributes") mark(m.target, now);
      for (const n of m.addedNodes) {
        mark(n, now);
        if (n.querySelectorAll) for (const c of n.querySelectorAll("[data-incident]")) mark(c, now);
      }
    }
  }).observe(document.querySelector(".leaflet-map-pane"),
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-incident"] });
}
"""


def write_site(folder: Path, site_id: str, prefix: str, n: int) -> Path:
    side = math.ceil(math.sqrt(n))
    cams = []
    for i in range(n):
        lat = CENTER[0] + (i // side - side / 2) * 0.002
        lon = CENTER[1] + (i % side - side / 2) * 0.002
        cams.append(
            f"""  - id: cam-{i:03d}
    name: "Camera {i:03d}"
    location: {{lat: {lat:.5f}, lon: {lon:.5f}}}
    source: {{kind: webcam, index: 0}}
    lines:
      - id: L1
        points: [[0.0, 0.5], [1.0, 0.5]]
        directions: {{positive: north, negative: south}}
"""
        )
    path = folder / "site.yaml"
    path.write_text(
        f"""site:
  id: {site_id}
  name: "Bench site"
  timezone: Asia/Ho_Chi_Minh
  center: {{lat: {CENTER[0]}, lon: {CENTER[1]}}}
  zoom: 14
  bin_seconds: 60
mqtt_prefix: {prefix}
cameras:
{"".join(cams)}""",
        encoding="utf-8",
    )
    return path


class Server:
    """``citywatch server run`` as a subprocess on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("citywatch")
        self.proc = subprocess.Popen(
            [str(exe), "server", "run"],
            cwd=ROOT,
            env={**os.environ, **env, "CITYWATCH_HTTP_PORT": str(self.port)},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Pub:
    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-map-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(2000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self.seq: dict[str, int] = {}

    def next_seq(self, cam: str) -> int:
        self.seq[cam] = self.seq.get(cam, 0) + 1
        return self.seq[cam]

    def send(self, m: Any, kind: str) -> mqtt.MQTTMessageInfo:
        return self.client.publish(
            topic_for(m.site_id, m.camera_id, kind, self.prefix), dump_message(m), qos=1
        )

    def incident(self, site: str, cam: str) -> uuid.UUID:
        iid = uuid.uuid4()
        now = datetime.now(UTC)
        m = IncidentMessage(
            msg_id=uuid.uuid4(), site_id=site, edge_id="edge-1", camera_id=cam, seq=self.next_seq(cam),
            ts=now, incident_id=iid, event=IncidentEvent.START, type=IncidentType.WRONG_WAY,
            severity=Severity.CRITICAL, rule_id="ww", line_id="L1", track_ids=[1], classes=["motorcycle"],
            started_at=now, summary="bench",
        )  # fmt: skip
        self.send(m, "incident")
        return iid

    def status(self, site: str, cam: str) -> mqtt.MQTTMessageInfo:
        m = StatusMessage(
            msg_id=uuid.uuid4(), site_id=site, edge_id="edge-1", camera_id=cam, seq=self.next_seq(cam),
            ts=datetime.now(UTC), state=StreamState.ONLINE,
        )  # fmt: skip
        return self.send(m, "status")

    def counts(self, site: str, cam: str, bin_start: datetime, n: int) -> mqtt.MQTTMessageInfo:
        m = CountsMessage(
            msg_id=uuid.uuid4(), site_id=site, edge_id="edge-1", camera_id=cam, seq=self.next_seq(cam),
            ts=datetime.now(UTC), bin_start=bin_start, bin_end=bin_start + timedelta(seconds=60),
            lines=[DirectionCount(line_id="L1", direction="north", cls="car", count=n)], frames=600, fps=10.0,
            health=[],
        )  # fmt: skip
        return self.send(m, "counts")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="cw-map-bench-"))
    dsn, _ = create_database(args.database_url)
    unique = uuid.uuid4().hex[:8]
    site_id, prefix = f"mapbench{unique}", f"cwmapbench{unique}"
    cams = [f"cam-{i:03d}" for i in range(args.cameras)]
    site = write_site(tmp, site_id, prefix, args.cameras)
    server = Server(
        {
            "DATABASE_URL": dsn,
            "MQTT_URL": f"mqtt://{args.mqtt_host}:{args.mqtt_port}",
            "MQTT_CLIENT_ID": f"cw-mapbench-{unique}",
            "CITYWATCH_SITE": str(site),
            "CITYWATCH_TILE_URL": "",
            "CITYWATCH_JWT_SECRET": f"bench-{unique}-0123456789abcdef0123456789",
        },
        tmp / "server.log",
    )
    pub = Pub(args.mqtt_host, args.mqtt_port, prefix)
    out: dict[str, Any] = {"cameras": args.cameras}
    try:
        server.wait()
        time.sleep(1.0)  # MQTT subscription
        create_user(dsn, "bench-operator", PASSWORD, "operator")
        login = httpx.post(
            f"{server.url}/api/v1/auth/token", data={"username": "bench-operator", "password": PASSWORD}
        )
        login.raise_for_status()
        token, user = login.json()["access_token"], login.json()["user"]
        init = (
            f"sessionStorage.setItem('citywatch.token', {json.dumps(token)});"
            f"sessionStorage.setItem('citywatch.user', {json.dumps(json.dumps(user))});"
            "localStorage.setItem('citywatch.lang', 'en');"
        )
        for cam in cams:
            pub.status(site_id, cam)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            ctx.add_init_script(init)
            page = ctx.new_page()
            page.goto(server.url + "/#map")
            page.wait_for_selector("#conn.on", timeout=30_000)
            page.evaluate(SEEN)

            # 1. publish -> marker
            lat: list[float] = []
            for _ in range(args.incidents):
                cam = random.choice(cams)
                sent = time.time() * 1000
                iid = pub.incident(site_id, cam)
                page.wait_for_function(f"window.__seen['{iid}']", timeout=15_000)
                lat.append(page.evaluate(f"window.__seen['{iid}']") - sent)
                time.sleep(0.2)
            out["incident_latency"] = {
                "n": len(lat),
                "p50_ms": round(pct(lat, 50), 1),
                "p99_ms": round(pct(lat, 99), 1),
                "max_ms": round(max(lat), 1),
                "mean_ms": round(statistics.fmean(lat), 1),
            }
            out["p50_ms"], out["p99_ms"] = (
                out["incident_latency"]["p50_ms"],
                out["incident_latency"]["p99_ms"],
            )

            # 2. page load with N cameras and M open incidents
            for _ in range(args.open_incidents - args.incidents):
                pub.incident(site_id, random.choice(cams))
            headers = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                live = httpx.get(f"{server.url}/api/v1/live/incidents", headers=headers).json()
                if len(live["incidents"]) >= args.open_incidents:
                    break
                time.sleep(0.5)
            loads = []
            for _ in range(3):
                p2 = ctx.new_page()
                p2.goto(server.url + "/#map")
                p2.wait_for_function(
                    f"document.querySelectorAll('path[data-incident]').length >= {args.open_incidents} && "
                    f"document.querySelectorAll('.cam-icon[data-state=online]').length >= {args.cameras}",
                    timeout=60_000,
                    polling=50,
                )
                loads.append(p2.evaluate("performance.now()"))
                p2.close()
            out["page_load"] = {
                "open_incidents": args.open_incidents,
                "median_ms": round(statistics.median(loads)),
                "runs_ms": [round(x) for x in loads],
            }

            # 3. responsiveness: idle baseline, then N count updates/s
            page.evaluate(PROBE)
            time.sleep(args.baseline_seconds)
            out["idle"] = page.evaluate(PROBE_READ)
            page.evaluate(PROBE)
            base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=6)
            k = 0
            started = time.monotonic()
            tick = 0.05
            per_tick = max(1, round(args.rate * tick))
            sent_n = 0
            while time.monotonic() - started < args.seconds:
                t0 = time.monotonic()
                for _ in range(per_tick):
                    cam = cams[k % len(cams)]
                    pub.counts(site_id, cam, base + timedelta(minutes=k // len(cams)), random.randint(1, 999))
                    k += 1
                    sent_n += 1
                time.sleep(max(0.0, tick - (time.monotonic() - t0)))
            elapsed = time.monotonic() - started
            time.sleep(2.0)  # the last batches reach the page
            stress = page.evaluate(PROBE_READ)
            stress["published"] = sent_n
            stress["publish_rate_per_s"] = round(sent_n / elapsed)
            out["under_load"] = stress
            for key in ("idle", "under_load"):
                out[key] = {k2: (round(v, 1) if isinstance(v, float) else v) for k2, v in out[key].items()}
            browser.close()
    finally:
        pub.close()
        server.stop()
        drop_database(args.database_url, dsn)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument("--open-incidents", type=int, default=500)
    parser.add_argument("--rate", type=int, default=1000, help="count updates per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument(
        "--database-url", default=os.environ.get("CITYWATCH_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    args = parser.parse_args()
    out = run(args)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
