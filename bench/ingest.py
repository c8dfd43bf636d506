"""Ingest benchmark: messages/s stored end to end (real broker, real PostgreSQL), the raw COPY ceiling for
the same rows, and publish-to-commit latency at a steady 1,000 messages/s.

    python bench/ingest.py --json                      # the local broker and database
    python bench/ingest.py --spawn-broker --json       # own mosquitto with the deployed limits
    python bench/ingest.py --spawn-broker --baseline /path/to/older/checkout --json   # side by side
    python bench/ingest.py --spawn-broker --database-url postgresql://postgres@127.0.0.1:5433/postgres

``--baseline`` runs the same benchmark of another checkout (its own code, PYTHONPATH set to it) in the
same invocation, first, and prints both results. ``--database-url`` picks the backend (a cluster with
TimescaleDB preloaded, as scripts/timescaledb.sh starts on 5433, or plain PostgreSQL).

Each run uses a scratch database (dropped afterwards) and a unique topic prefix and client id.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
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
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.site import load_site
from contract import CountsMessage, DirectionCount, dump_message, topic_for
from server.ingest.service import IngestService
from server.main import prepare
from server.metrics import Metrics
from server.settings import Settings

N_CAMERAS = 20


class RecordingMetrics(Metrics):
    """Keeps every commit lag so the benchmark can compute percentiles."""

    def __init__(self) -> None:
        super().__init__()
        self.lags: list[float] = []
        self.stored_total = 0
        self.batch_sizes: list[int] = []
        self.last_commit = 0.0

    def on_batch(self, **kw: Any) -> None:
        super().on_batch(**kw)
        self.lags.extend(kw["lags_s"])
        self.stored_total += sum(kw["stored"].values()) + kw["duplicates"]
        self.batch_sizes.append(kw["size"])
        self.last_commit = time.time()


def message(
    site: str, cam: str, seq: int, bin_start: datetime, ts: datetime | None = None, cells: int = len(CELLS)
) -> CountsMessage:
    return CountsMessage(
        msg_id=uuid.uuid4(), site_id=site, edge_id="edge-bench", camera_id=cam, seq=seq,
        ts=ts or datetime.now(UTC), bin_start=bin_start, bin_end=bin_start + timedelta(minutes=1),
        lines=[DirectionCount(line_id=ln, direction=d, cls=c, count=1 + (seq + i) % 9)
               for i, (ln, d, c) in enumerate(CELLS[:cells])],
        frames=600, fps=10.0,
    )  # fmt: skip


def spawn_broker(tmp: Path, inflight: int) -> tuple[subprocess.Popen[bytes], str]:
    """Mosquitto with the limits of deploy/mosquitto/mosquitto.conf (queue, in-flight window)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 200000\n"
        f"max_queued_bytes 0\nmax_inflight_messages {inflight}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"mqtt://127.0.0.1:{port}"


def publisher(mqtt_url: str) -> mqtt.Client:
    host, port = mqtt_url.split("://", 1)[1].rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    return client


def publish_job(
    mqtt_url: str,
    site_id: str,
    prefix: str,
    cams: list[str],
    job: tuple[int, int, float, int],
    out: Any,
) -> None:
    """Runs in its own process (own GIL, as an edge would be): publish n counts messages, round robin
    over the cameras, as fast as possible (rate 0) or paced; ts is set just before each publish."""
    first_seq, n, rate, cells = job
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=2)
    pub = publisher(mqtt_url)
    prebuilt = []
    if rate <= 0:
        for i in range(n):
            seq = first_seq + i // len(cams)
            cam = cams[i % len(cams)]
            m = message(site_id, cam, seq, base + timedelta(minutes=seq), cells=cells)
            prebuilt.append((topic_for(site_id, cam, "counts", prefix), dump_message(m)))
    t0 = time.time()
    infos = []
    for i in range(n):
        if rate > 0:
            delay = t0 + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            seq = first_seq + i // len(cams)
            cam = cams[i % len(cams)]
            m = message(site_id, cam, seq, base + timedelta(minutes=seq), ts=datetime.now(UTC), cells=cells)
            infos.append(pub.publish(topic_for(site_id, cam, "counts", prefix), dump_message(m), qos=1))
        else:
            infos.append(pub.publish(*prebuilt[i], qos=1))
    for info in infos:
        info.wait_for_publish(60)
    out.put((t0, time.time()))
    pub.loop_stop()
    pub.disconnect()


def wait_for(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    broker_proc = None
    mqtt_url = args.mqtt_url
    if args.spawn_broker:
        broker_proc, mqtt_url = spawn_broker(tmp, args.broker_inflight)
    db_url, _ = create_database(args.database_url)
    token = uuid.uuid4().hex[:8]
    site_id, prefix = f"b{token}", f"cwb{token}"
    cams = [f"cam-{i:02d}" for i in range(N_CAMERAS)]
    try:
        site_path = write_site(tmp, site_id, prefix, cams)
        settings = Settings.from_env({
            "DATABASE_URL": db_url, "MQTT_URL": mqtt_url, "MQTT_CLIENT_ID": f"bench-{token}",
            "MQTT_SESSION_EXPIRY_S": "60", "CITYWATCH_SITE": str(site_path),
            "CITYWATCH_BATCH_SIZE": str(args.batch_size),
        })  # fmt: skip
        site = load_site(site_path)
        prepare(settings, site)
        metrics = RecordingMetrics()
        service = IngestService(settings, site, metrics)
        service.start()
        if not service.subscriber.subscribed.wait(10):
            raise SystemExit("could not subscribe at the broker")
        ctx = multiprocessing.get_context("spawn")
        out: Any = ctx.Queue()

        def publish(first_seq: int, n: int, rate: float) -> tuple[float, float]:
            proc = ctx.Process(
                target=publish_job,
                args=(mqtt_url, site_id, prefix, cams, (first_seq, n, rate, args.cells), out),
            )
            proc.start()
            times: tuple[float, float] = out.get(timeout=600)
            proc.join(30)
            return times

        # 1. Throughput: publish N as fast as the broker takes them; time until all are committed.
        n = args.messages - args.messages % N_CAMERAS
        t0, t_pub = publish(1, n, 0.0)
        done = wait_for(lambda: metrics.stored_total >= n, 300)
        t1 = metrics.last_commit  # the last commit, also when the broker dropped some messages
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT count(*) FROM count_bins").fetchone()
            stored_rows = conn.execute("SELECT count(*) FROM counts").fetchone()
        stored = int(row[0]) if row else 0
        sizes = metrics.batch_sizes[:]

        # 2. Latency at a steady rate: ts is set just before publishing; lag = commit - ts.
        metrics.lags.clear()
        before = metrics.stored_total
        total = int(args.rate * args.seconds)
        total -= total % N_CAMERAS
        l0, l1 = publish(n // N_CAMERAS + 1, total, args.rate)
        achieved = total / (l1 - l0)
        wait_for(lambda: metrics.stored_total >= before + total, 120)
        lat = percentiles([x * 1000 for x in metrics.lags])
        service.stop()

        # 3. The ceiling: COPY the same rows (bins + count cells) from one process into like tables.
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_bins (LIKE count_bins INCLUDING ALL)")
            conn.execute("CREATE TABLE bench_counts (LIKE counts INCLUDING ALL)")
            bins = conn.execute("SELECT * FROM count_bins").fetchall()
            cells = conn.execute("SELECT * FROM counts").fetchall()
            c0 = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY bench_bins FROM STDIN") as cp:
                    for r in bins:
                        cp.write_row(r)
                with cur.copy("COPY bench_counts FROM STDIN") as cp:
                    for r in cells:
                        cp.write_row(r)
            c1 = time.perf_counter()
        copy_rows = len(bins) + len(cells)
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT value FROM citywatch_meta WHERE key = 'backend'").fetchone()
        return {
            "backend": row[0] if row else None,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "broker": f"spawned mosquitto (max_inflight_messages {args.broker_inflight})"
            if args.spawn_broker
            else mqtt_url,
            "messages": n,
            "rows_per_message": 1 + args.cells,
            "stored_msgs_per_s": round(n / (t1 - t0), 1),
            "stored_rows_per_s": round(n * (1 + args.cells) / (t1 - t0), 1),
            "publish_msgs_per_s": round(n / (t_pub - t0), 1),
            "all_stored": done and stored == n and (stored_rows[0] if stored_rows else 0) == n * args.cells,
            "lost_by_broker": n - stored,
            "batch_size_mean": round(sum(sizes) / max(len(sizes), 1), 1),
            "copy_rows_per_s": round(copy_rows / (c1 - c0), 1),
            "copy_msgs_per_s_equivalent": round(len(bins) / (c1 - c0), 1),
            "latency_rate_msgs_per_s": round(achieved, 1),
            "p50_latency_ms_at_1000": lat["p50_ms"],
            "p99_latency_ms_at_1000": lat["p99_ms"],
            "max_latency_ms_at_1000": lat["max_ms"],
        }
    finally:
        drop_database(args.database_url, db_url)
        if broker_proc is not None:
            broker_proc.terminate()
            broker_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The same benchmark from another checkout, in a subprocess running that checkout's code."""
    root = args.baseline.resolve()
    cmd = [sys.executable, str(root / "bench" / "ingest.py"), "--json", "--database-url", args.database_url,
           "--messages", str(args.messages), "--rate", str(args.rate), "--seconds", str(args.seconds),
           "--batch-size", str(args.batch_size), "--cells", str(args.cells)]  # fmt: skip
    if args.spawn_broker:
        cmd += ["--spawn-broker", "--broker-inflight", str(args.broker_inflight)]
    else:
        cmd += ["--mqtt-url", args.mqtt_url]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1200, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr[-2000:]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    out["checkout"] = str(root)
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default=DEFAULT_DATABASE_URL, help="admin DSN; a scratch DB is made"
    )
    parser.add_argument("--mqtt-url", default=DEFAULT_MQTT_URL)
    parser.add_argument("--spawn-broker", action="store_true", help="run own mosquitto with deployed limits")
    parser.add_argument(
        "--broker-inflight",
        type=int,
        default=100,
        help="spawned broker's max_inflight_messages (deployed: 100)",
    )
    parser.add_argument("--messages", type=int, default=20000, help="messages for the throughput phase")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s for the latency phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cells", type=int, default=len(CELLS), help="non-zero cells per message (1..16)")
    parser.add_argument("--baseline", type=Path, help="also run this other checkout's bench/ingest.py first")
    args = parser.parse_args()
    args.cells = max(1, min(args.cells, len(CELLS)))
    logging.basicConfig(level=logging.WARNING)
    result = run(args) if args.baseline is None else {"baseline": run_baseline(args), "this": run(args)}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
