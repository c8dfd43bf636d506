"""Alert latency: an incident message published to the broker -> the signed webhook arriving at a local
receiver, through the real server process (ingest + alert engine), real broker and real PostgreSQL.

Two phases in one run, side by side: a baseline with no other traffic, then the same incidents while
1,000 count messages/s (the ingest benchmark's load, 17-row messages over 20 cameras) are published
from another process.

    python bench/alert_latency.py --json
    python bench/alert_latency.py --incidents 100 --rate 1000 --spawn-broker --json
    python bench/alert_latency.py --spawn-broker --drain 120000 --drain-cameras 2000 --json  # + a drain

With ``--drain N`` the server is then stopped (an outage; the broker keeps its session and queues), a
backlog of N count messages is published meanwhile (``--drain-cameras`` cameras, one bin per message, so
2,000 cameras x 60 bins is an hour of backlog), the server is restarted, the same incidents are measured
while it drains the backlog, and the drain time (restart, and first commit, to the last backlog bin
committed) and the stored rate are reported. ``--database-url`` picks the backend: a cluster with
TimescaleDB preloaded (scripts/timescaledb.sh: 127.0.0.1:5433) or plain PostgreSQL.

Prints ``p50_ms``/``p99_ms`` (of the loaded phase) and both phases in full.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import (
    CELLS,
    DEFAULT_DATABASE_URL,
    DEFAULT_MQTT_URL,
    create_database,
    drop_database,
    free_port,
    percentiles,
    write_site,
)
from ingest import publish_job, publisher, spawn_broker

from contract import IncidentEvent, IncidentMessage, IncidentType, Severity, dump_message, topic_for
from server.alerting.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret-0123456789"
N_CAMERAS = 20
PUBLISHERS = 4  # processes publishing the drain backlog


class Receiver:
    """The webhook peer: records when each alert arrived, by incident id; checks each signature."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    verify_signature(
                        SECRET,
                        self.headers.get(TIMESTAMP_HEADER, ""),
                        body,
                        self.headers.get(SIGNATURE_HEADER, ""),
                    )
                except Exception:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                with receiver.lock:
                    receiver.arrived.setdefault(json.loads(body)["incident_id"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def incident(site: str, cam: str, seq: int) -> IncidentMessage:
    now = datetime.now(UTC)
    return IncidentMessage(
        msg_id=uuid.uuid4(), site_id=site, edge_id="edge-alert-bench", camera_id=cam, seq=seq, ts=now,
        incident_id=uuid.uuid4(), event=IncidentEvent.START, type=IncidentType.WRONG_WAY,
        severity=Severity.CRITICAL, rule_id="ww", line_id="L1", track_ids=[seq], classes=["motorcycle"],
        started_at=now, summary="bench",
    )  # fmt: skip


def phase(
    mqtt_url: str, site_id: str, prefix: str, receiver: Receiver, n: int, gap_s: float, first_seq: int
) -> dict[str, Any]:
    pub = publisher(mqtt_url)
    sent: dict[str, float] = {}
    try:
        for i in range(n):
            m = incident(site_id, "alert-cam", first_seq + i)
            sent[str(m.incident_id)] = time.time()
            pub.publish(topic_for(site_id, "alert-cam", "incident", prefix), dump_message(m), qos=1)
            time.sleep(gap_s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with receiver.lock:
                if all(i in receiver.arrived for i in sent):
                    break
            time.sleep(0.05)
    finally:
        pub.loop_stop()
        pub.disconnect()
    with receiver.lock:
        lat = [(receiver.arrived[i] - t) * 1000 for i, t in sent.items() if i in receiver.arrived]
    out: dict[str, Any] = {"sent": n, "received": len(lat)}
    if lat:
        out.update(percentiles(lat))
    return out


def publish_backlog(
    args: argparse.Namespace, mqtt_url: str, site_id: str, prefix: str, cams: list[str], ctx: Any
) -> float:
    """The backlog, published while the server is down: one bin per message, from several processes
    (an MQTT client has 65,535 packet ids, so one client cannot have more messages outstanding)."""
    per_cam = max(1, args.drain // len(cams))
    procs, q = [], ctx.Queue()
    groups = [cams[i::PUBLISHERS] for i in range(PUBLISHERS)]
    t0 = time.time()
    for group in groups:
        job = (1, per_cam * len(group), 0.0, len(CELLS))
        proc = ctx.Process(target=publish_job, args=(mqtt_url, site_id, prefix, group, job, q))
        proc.start()
        procs.append(proc)
    for _ in procs:
        q.get(timeout=900)
    for proc in procs:
        proc.join(30)
    return round(time.time() - t0, 1)


def drain_phase(
    args: argparse.Namespace,
    mqtt_url: str,
    db_url: str,
    site_id: str,
    prefix: str,
    receiver: Receiver,
    t_restart: float,
) -> dict[str, Any]:
    """The server is back (started at ``t_restart``) with the backlog queued at the broker: the
    incidents while it drains, and the time until every backlog bin is committed."""
    n = (args.drain // args.drain_cameras) * args.drain_cameras
    t_ready = time.time()
    during = phase(mqtt_url, site_id, prefix, receiver, args.incidents, args.gap, 20_000)
    stored = 0
    deadline = time.monotonic() + args.drain_timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM count_bins WHERE camera_id LIKE 'drain-%'").fetchone()
            stored = int(row[0]) if row else 0
            if stored >= n:
                break
            time.sleep(0.5)
        row = conn.execute(
            "SELECT extract(epoch FROM min(received_at)), extract(epoch FROM max(received_at)) "
            "FROM count_bins WHERE camera_id LIKE 'drain-%'"
        ).fetchone()
    first = float(row[0]) if row and row[0] is not None else t_ready
    last = float(row[1]) if row and row[1] is not None else time.time()
    return {
        "backlog_messages": n,
        "cameras": args.drain_cameras,
        "stored": stored,
        "drain_s_from_restart": round(last - t_restart, 1),
        "drain_s_first_to_last_commit": round(last - first, 1),
        "stored_msgs_per_s": round(stored / max(last - first, 1e-9), 1),
        "alerts_during_drain": during,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="cw-alert-bench-"))
    broker = None
    mqtt_url = args.mqtt_url
    if args.spawn_broker:
        broker, mqtt_url = spawn_broker(tmp, 1000)
    db_url, _ = create_database(args.database_url)
    tag = uuid.uuid4().hex[:8]
    site_id, prefix = f"alerts{tag}", f"ab{tag}"
    receiver = Receiver()
    http, hook = receiver.serve()
    cams = [f"cam-{i:02d}" for i in range(N_CAMERAS)]
    drain_cams = [f"drain-{i:04d}" for i in range(args.drain_cameras if args.drain else 0)]
    site_path = write_site(tmp, site_id, prefix, [*cams, *drain_cams, "alert-cam"])
    site_path.write_text(
        site_path.read_text()
        + f"""alerting:
  channels:
    dispatch: {{kind: webhook, url: "{hook}", secret: "{SECRET}", timeout_s: 5}}
  rules:
    - id: every-wrong-way
      types: [wrong_way]
      channels: [dispatch]
      dedup_key: [rule]
      cooldown_s: 0
"""
    )
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "MQTT_URL": mqtt_url,
        "MQTT_CLIENT_ID": f"alert-bench-{tag}",
        "MQTT_SESSION_EXPIRY_S": "3600",
        "CITYWATCH_SITE": str(site_path),
        "CITYWATCH_HTTP_PORT": str(port),
    }
    log_file = (tmp / "server.log").open("wb")

    def start_server() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("citywatch")), "server", "run"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        time.sleep(2.0)  # the alert engine's subscription
        return proc

    def stop_server(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

    server = start_server()
    result: dict[str, Any] = {"incidents_per_phase": args.incidents, "load_rate": args.rate}
    load = None
    try:
        result["baseline"] = phase(mqtt_url, site_id, prefix, receiver, args.incidents, args.gap, 1)
        seconds = args.incidents * args.gap + 10
        ctx = multiprocessing.get_context("spawn")
        q = ctx.Queue()
        load = ctx.Process(
            target=publish_job,
            args=(mqtt_url, site_id, prefix, cams, (1, int(args.rate * seconds), args.rate, len(CELLS)), q),
        )
        load.start()
        time.sleep(3.0)  # let the load reach its steady state first
        loaded = phase(mqtt_url, site_id, prefix, receiver, args.incidents, args.gap, 10_000)
        result["with_load"] = loaded
        result["p50_ms"], result["p99_ms"] = loaded.get("p50_ms"), loaded.get("p99_ms")
        load.terminate()
        load.join(10)
        load = None
        if args.drain:
            stop_server(server)  # the outage: the broker keeps the server's session and queues for it
            backlog_s = publish_backlog(args, mqtt_url, site_id, prefix, drain_cams, ctx)
            t_restart = time.time()
            server = start_server()
            result["drain"] = drain_phase(args, mqtt_url, db_url, site_id, prefix, receiver, t_restart)
            result["drain"]["backlog_publish_s"] = backlog_s
        result["bad_signatures"] = receiver.bad_signatures
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT value FROM citywatch_meta WHERE key = 'backend'").fetchone()
        result["backend"] = row[0] if row else None
    finally:
        if load is not None:
            load.terminate()
            load.join(10)
        stop_server(server)
        log_file.close()
        http.shutdown()
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        drop_database(args.database_url, db_url)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--mqtt-url", default=DEFAULT_MQTT_URL)
    parser.add_argument("--spawn-broker", action="store_true", help="own mosquitto with deployed limits")
    parser.add_argument("--incidents", type=int, default=100, help="incidents per phase")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between incidents")
    parser.add_argument("--rate", type=float, default=1000.0, help="count messages/s beside them")
    parser.add_argument("--drain", type=int, default=0, help="backlog messages for the drain phase (0: none)")
    parser.add_argument("--drain-cameras", type=int, default=2000, help="cameras of the backlog")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="longest wait for the drain")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:22} {v}")
    return 0 if result.get("with_load", {}).get("received") == args.incidents else 1


if __name__ == "__main__":
    sys.exit(main())
