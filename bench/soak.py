"""Soak: real edges with the real model plus 1,000 count messages/s, for minutes, against the real server.

    python bench/soak.py --json                 # 30 minutes
    python bench/soak.py --minutes 2 --json     # CI (tests/faults/test_soak_short.py)

Runs (private, in one temp folder removed at the end): Mosquitto and a PostgreSQL cluster of their own
(from ``bench/faults.py``), the server (``citywatch server run``), one ``citywatch edge run`` worker with
four cameras on four looping clips of ``../shared/videos`` with the real model and no frame-rate cap, and
a load process publishing ``--rate`` counts messages/s (QoS 1, ``bench/ingest.py``'s message builder)
over 20 more cameras.

Every ``--sample-s`` seconds it records the RSS (and PSS, for PostgreSQL's shared buffers) of each
process, the backlog (load messages the broker acknowledged minus those stored) and the ingest lag of
the edge's heartbeats (stored time minus the message's ``ts``, read from the database). At the end the
load stops, the backlog drains, and the heartbeats give each camera's dropped frames and analysed fps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import free_port
from faults import (
    LINES_YAML,
    ROOT,
    Broker,
    HarnessError,
    Postgres,
    Server,
    kill_group,
    query,
    spawn,
    try_query,
    wait_for_subscription,
    workspace,
)

SHARED = Path(os.environ.get("CITYWATCH_SHARED", ROOT.parent / "shared"))
MODEL = Path(os.environ.get("CITYWATCH_MODEL", SHARED / "models" / "yolo11n_int8_openvino_model"))
CLIPS = (
    "vn-hcmc-motorbikes-wrongway.mp4",
    "fr-motorway-cctv-pedestrian-alarm.avi",
    "nl-motorway-overpass.mp4",
    "us-arterial-dusk-overhead.mp4",
)
LOAD_CAMERAS = [f"load-{i:02d}" for i in range(20)]
BIN_S = 15


def write_site(path: Path, site_id: str, prefix: str) -> list[str]:
    """Four file cameras (a counting line each) and the load's cameras; returns the file cameras."""
    real = [f"cam-{i}" for i in range(len(CLIPS))]
    cams = "".join(
        f'  - id: {cam}\n    name: "{clip}"\n    location: {{lat: 13.77, lon: 109.22}}\n'
        f'    source: {{kind: file, path: "{SHARED / "videos" / clip}", loop: true}}\n'
        f'    detector: {{model: "{MODEL}"}}\n'
        f"    lines:\n      - id: L1\n        points: [[0.0, 0.6], [1.0, 0.6]]\n"
        f"        directions: {{positive: inbound, negative: outbound}}\n"
        for cam, clip in zip(real, CLIPS, strict=True)
    )
    cams += "".join(
        f'  - id: {c}\n    name: "{c}"\n    location: {{lat: 13.77, lon: 109.22}}\n'
        f"    source: {{kind: webcam, index: 0}}\n{LINES_YAML}"
        for c in LOAD_CAMERAS
    )
    path.write_text(
        f"site:\n  id: {site_id}\n  name: soak\n  timezone: Asia/Ho_Chi_Minh\n"
        f"  center: {{lat: 13.77, lon: 109.22}}\n  bin_seconds: {BIN_S}\n"
        f"mqtt_prefix: {prefix}\ncameras:\n{cams}",
        encoding="utf-8",
    )
    return real


# -- the load child ---------------------------------------------------------------------------------
def load_main(argv: list[str]) -> int:
    """``soak.py load``: publish counts messages at a steady rate until SIGTERM; progress to a file."""
    p = argparse.ArgumentParser(prog="soak.py load")
    p.add_argument("--mqtt-port", type=int, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--cells", type=int, required=True)
    p.add_argument("--progress", required=True)
    a = p.parse_args(argv)

    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from ingest import message  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    from contract import dump_message, topic_for  # noqa: PLC0415

    stop = False

    def _term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    acked = 0

    def _on_publish(c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-load-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.on_publish = _on_publish
    client.connect("127.0.0.1", a.mqtt_port)
    client.loop_start()
    base = (datetime.now(UTC) - timedelta(days=300)).replace(second=0, microsecond=0)
    topics = [topic_for(a.site, c, "counts", a.prefix) for c in LOAD_CAMERAS]
    progress = Path(a.progress)
    t0 = time.monotonic()
    t0_epoch = time.time()
    sent, last_write = 0, 0.0
    while not stop:
        due = t0 + sent / a.rate
        now = time.monotonic()
        if due > now:
            time.sleep(min(due - now, 0.05))
            continue
        k = sent % len(LOAD_CAMERAS)
        seq = sent // len(LOAD_CAMERAS) + 1
        m = message(a.site, LOAD_CAMERAS[k], seq, base + timedelta(minutes=seq), cells=a.cells)
        client.publish(topics[k], dump_message(m), qos=1)
        sent += 1
        if now - last_write > 0.2:
            last_write = now
            doc = {"published": sent, "acked": acked, "t0_epoch": t0_epoch}
            progress.write_text(json.dumps(doc), encoding="utf-8")
    deadline = time.monotonic() + 60
    while acked < sent and time.monotonic() < deadline:
        time.sleep(0.1)
    doc = {"published": sent, "acked": acked, "t0_epoch": t0_epoch, "done": True}
    progress.write_text(json.dumps(doc), encoding="utf-8")
    client.loop_stop()
    client.disconnect()
    return 0


# -- measurements -----------------------------------------------------------------------------------
def _kb(pid: int, field: str, source: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def memory_mb(pids: list[int]) -> dict[str, float]:
    """Summed RSS and PSS (PSS splits shared pages, e.g. PostgreSQL's shared buffers, fairly)."""
    return {
        "rss_mb": round(sum(_kb(p, "VmRSS") for p in pids) / 1024, 1),
        "pss_mb": round(sum(_kb(p, "Pss", "smaps_rollup") for p in pids) / 1024, 1),
    }


def outbox_waiting(path: Path) -> dict[str, int]:
    """Messages per camera still in the edge's outbox (not yet acknowledged by the broker)."""
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {str(c): int(n) for c, n in db.execute("SELECT camera_id, count(*) FROM outbox GROUP BY 1")}
    finally:
        db.close()


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 3)


def read_progress(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return doc
    except (OSError, ValueError):
        return {"published": 0, "acked": 0}


def stored_load(db_url: str) -> int | None:
    rows = try_query(db_url, "SELECT count(*) FROM count_bins WHERE camera_id = ANY(%s)", (LOAD_CAMERAS,))
    return int(rows[0][0]) if rows else None


def load_lag(db_url: str, since: datetime, t0_epoch: float, rate: float) -> list[float]:
    """Seconds from each load message's scheduled publish time to its commit (count_bins.received_at):
    message ``i`` is camera ``i % 20``'s bin ``seq = i // 20 + 1``, published at ``t0 + i / rate``."""
    rows = try_query(
        db_url,
        "SELECT camera_id, seq, extract(epoch FROM received_at) FROM count_bins "
        "WHERE camera_id = ANY(%s) AND received_at > %s",
        (LOAD_CAMERAS, since),
    )
    index = {c: k for k, c in enumerate(LOAD_CAMERAS)}
    return [
        float(at) - (t0_epoch + ((int(seq) - 1) * len(LOAD_CAMERAS) + index[cam]) / rate)
        for cam, seq, at in rows or []
    ]


def heartbeat_lag(db_url: str, since: datetime) -> list[float]:
    """Seconds from each heartbeat's ``ts`` to its commit (processed_messages.received_at)."""
    rows = try_query(
        db_url,
        "SELECT extract(epoch FROM p.received_at - h.ts) FROM heartbeats h "
        "JOIN processed_messages p USING (msg_id) WHERE p.received_at > %s",
        (since,),
    )
    return [float(r[0]) for r in rows or []]


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not MODEL.exists() or not all((SHARED / "videos" / c).exists() for c in CLIPS):
        raise HarnessError(f"needs the model and clips under {SHARED}")
    token = uuid.uuid4().hex[:8]
    site_id, prefix = f"s{token}", f"cws{token}"
    with workspace(args.keep) as tmp:
        broker = Broker(tmp / "broker")
        pg = Postgres(tmp / "pg")
        server: Server | None = None
        edge = load = None
        try:
            pg.init()
            pg.start()
            broker.start()
            site = tmp / "site.yaml"
            real = write_site(site, site_id, prefix)
            server = Server(tmp, {
                "DATABASE_URL": pg.url, "MQTT_URL": broker.url, "MQTT_CLIENT_ID": f"cw-soak-{token}",
                "CITYWATCH_SITE": str(site), "CITYWATCH_TIMESCALE": "off",
            })  # fmt: skip
            server.start()
            wait_for_subscription(pg.url, broker.port, site_id, prefix, LOAD_CAMERAS[0])
            exe = str(Path(sys.executable).with_name("citywatch"))
            edge_env = {
                **os.environ, "MQTT_URL": broker.url, "CITYWATCH_HEARTBEAT_S": str(args.heartbeat_s),
                "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false",
                "YOLO_CONFIG_DIR": str(ROOT / ".cache" / "ultralytics"),
            }  # fmt: skip
            edge = spawn(
                [exe, "edge", "run", "--site", str(site), "--edge-id", "soak-edge", "--outbox",
                 str(tmp / "outbox"), "--metrics-port", str(free_port()),
                 *(x for c in real for x in ("--camera", c))],
                tmp / "edge.log", edge_env,
            )  # fmt: skip
            # Start the clock once every camera analyses frames (its first heartbeat is stored).
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                rows = try_query(pg.url, "SELECT count(DISTINCT camera_id) FROM heartbeats WHERE fps > 0")
                if rows and rows[0][0] >= len(real):
                    break
                if edge.poll() is not None:
                    raise HarnessError("the edge worker exited during start-up")
                time.sleep(1)
            else:
                log_tail = (tmp / "edge.log").read_text(errors="replace")[-3000:]
                raise HarnessError(
                    f"the cameras did not all start analysing within 180 s; edge log:\n{log_tail}"
                )
            progress = tmp / "load.json"
            load = spawn(
                [sys.executable, str(Path(__file__).resolve()), "load", "--mqtt-port", str(broker.port),
                 "--site", site_id, "--prefix", prefix, "--rate", str(args.rate), "--cells", str(args.cells),
                 "--progress", str(progress)],
                tmp / "load.log",
            )  # fmt: skip
            edge_pid = edge.pid
            procs: dict[str, Callable[[], list[int]]] = {
                "edge": lambda: [edge_pid],
                "server": lambda: [server.proc.pid] if server and server.proc else [],
                "broker": lambda: [broker.proc.pid] if broker.proc else [],
                "postgres": pg.pids,
            }
            samples: list[dict[str, Any]] = []
            t0 = time.monotonic()
            started = datetime.now(UTC)
            end = t0 + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
                prog = read_progress(progress)
                stored = stored_load(pg.url)
                window = datetime.now(UTC) - timedelta(seconds=args.sample_s)
                lags = heartbeat_lag(pg.url, window)
                load_lags = load_lag(pg.url, window, float(prog.get("t0_epoch", 0.0)), args.rate)
                samples.append({
                    "t_s": round(time.monotonic() - t0, 1),
                    "memory": {k: memory_mb(f()) for k, f in procs.items()},
                    "load_acked": prog["acked"], "load_stored": stored,
                    "backlog": None if stored is None else max(0, int(prog["acked"]) - stored),
                    "heartbeat_lag_max_s": round(max(lags), 2) if lags else None,
                    "load_lag_p99_s": pct(load_lags, 99), "load_lag_max_s": pct(load_lags, 100),
                })  # fmt: skip
                if edge.poll() is not None or server.proc is None or server.proc.poll() is not None:
                    raise HarnessError("the edge worker or the server died during the soak")
            ended = datetime.now(UTC)
            kill_group(load, signal.SIGTERM, wait=90)
            t_drain = time.monotonic()
            prog = read_progress(progress)
            while time.monotonic() - t_drain < args.drain_timeout:
                stored = stored_load(pg.url)
                if stored is not None and stored >= int(prog["acked"]):
                    break
                time.sleep(0.5)
            drain_s = round(time.monotonic() - t_drain, 1)
            final_stored = stored_load(pg.url) or 0
            lags_all = load_lag(pg.url, started, float(prog.get("t0_epoch", 0.0)), args.rate)
            waiting = outbox_waiting(tmp / "outbox" / "soak-edge.sqlite3")
            result = summarize(pg.url, samples, prog, final_stored, drain_s, started, real, args, ended)
            for cam in real:
                result["cameras"][cam]["edge_outbox_waiting_at_end"] = waiting.get(cam, 0)
            result["load_ingest_lag_s"] = {
                "p50": pct(lags_all, 50), "p99": pct(lags_all, 99), "max": pct(lags_all, 100),
                "n": len(lags_all),
            }  # fmt: skip
            return result
        finally:
            kill_group(load, signal.SIGTERM, wait=30)
            kill_group(edge, signal.SIGTERM, wait=30)
            if server is not None:
                server.stop()
            broker.stop()
            pg.stop()


def summarize(
    db_url: str,
    samples: list[dict[str, Any]],
    prog: dict[str, Any],
    final_stored: int,
    drain_s: float,
    started: datetime,
    real: list[str],
    args: argparse.Namespace,
    ended: datetime,
) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    memory = {
        name: {
            "start": first["memory"][name],
            "end": last["memory"][name],
            "peak_rss_mb": max(s["memory"][name]["rss_mb"] for s in samples),
        }
        for name in first["memory"]
    }
    cams = {}
    for cam in real:
        rows = query(
            db_url,
            "SELECT max(dropped_frames), avg(fps), avg(source_fps), avg(inference_ms), count(*), max(ts) "
            "FROM heartbeats WHERE camera_id = %s AND ts >= %s",
            (cam, started),
        )
        bins = query(db_url, "SELECT count(*), coalesce(sum(total), 0) FROM count_bins WHERE camera_id = %s",
                     (cam,))  # fmt: skip
        dropped, fps, src_fps, infer, beats, last_beat = rows[0]
        gaps = query(db_url, "SELECT count(*), coalesce(sum(last_seq - first_seq + 1), 0) FROM seq_gaps "
                             "WHERE camera_id = %s AND closed_at IS NULL", (cam,))  # fmt: skip
        cams[cam] = {
            "dropped_frames": int(dropped or 0), "mean_fps": round(float(fps or 0), 2),
            "source_fps": round(float(src_fps or 0), 2), "inference_ms": round(float(infer or 0), 1),
            "heartbeats": int(beats), "bins": int(bins[0][0]), "crossings": int(bins[0][1]),
            "last_heartbeat": last_beat.isoformat() if last_beat else None,
            # A camera whose processing thread died stops sending heartbeats: stale at the end.
            "heartbeat_stale_s_at_end": round((ended - last_beat).total_seconds(), 1) if last_beat else None,
            "open_seq_gaps": int(gaps[0][0]), "missing_seqs": int(gaps[0][1]),
        }  # fmt: skip
    lags = heartbeat_lag(db_url, started)
    dead = query(db_url, "SELECT reason, count(*) FROM dead_letters GROUP BY 1")
    backlogs = [s["backlog"] for s in samples if s["backlog"] is not None]
    return {
        "minutes": args.minutes,
        "load_rate_msgs_per_s": args.rate,
        "load_cells_per_msg": args.cells,
        "load_published": int(prog["published"]),
        "load_acked_by_broker": int(prog["acked"]),
        "load_stored": final_stored,
        "load_unstored_after_drain": int(prog["acked"]) - final_stored,
        "drain_s": drain_s,
        "backlog_msgs": {"max": max(backlogs, default=0), "end_before_drain": backlogs[-1] if backlogs else 0,
                         "lag_s_at_end": round((backlogs[-1] if backlogs else 0) / args.rate, 2)},
        "heartbeat_ingest_lag_s": {
            "p50": pct(lags, 50), "p99": pct(lags, 99), "max": pct(lags, 100),
            "n": len(lags),
        },
        "memory_mb": memory,
        "cameras": cams,
        "dead_letters": {str(r): int(n) for r, n in dead},
        "samples": samples,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=1000.0, help="synthetic counts messages per second")
    p.add_argument("--cells", type=int, default=4, help="non-zero cells per synthetic message")
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--heartbeat-s", type=float, default=5.0)
    p.add_argument("--drain-timeout", type=float, default=300.0)
    p.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args(argv)

    def _term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _term)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        with contextlib.suppress(KeyError):
            print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1, default=str))
    return 0 if result["load_unstored_after_drain"] == 0 and not result["dead_letters"] else 1


if __name__ == "__main__":
    sys.exit(main())
