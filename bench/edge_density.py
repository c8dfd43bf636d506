"""Edge density: how many live cameras one worker serves with every labelled clip still counted right.

    python bench/edge_density.py --json [--cameras 1,4,8] [--model M] [--max-run-s 120]

For each camera count N, ONE `citywatch edge run` serves N cameras: every clip with counting labels in
../shared/labels (lines and non-zero totals), then unlabelled clips from ../shared/videos (looping, with
a line across the middle) to load the box further. With N smaller than the labelled clips, the first N
labelled clips. Files are played in real time like a stream; a file starts when its camera is ready
(the worker no longer loses the first seconds to model loading, so no frozen lead-in is needed).
Counts are read back from MQTT (QoS 1, unique topic prefix) as any subscriber would, and scored like
`citywatch eval` (FORMAT.md: 1 - sum|counted - truth| / sum truth). Per clip: accuracy, analysed and
detected fps (frames / clip seconds, from /metrics), mean scheduler queueing delay; per run: the
worker's peak RSS and the load average. The run ends when every labelled clip has ended (or after
``--max-run-s``), then the worker gets SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from _common import free_port  # noqa: E402

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))

LABEL_CLASSES = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]


def labelled_clips(labels: Path, videos: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    out = []
    for label in sorted(labels.glob("*.json")):
        doc = json.loads(label.read_text(encoding="utf-8"))
        truth = sum(n for d in doc.get("totals", {}).values() for c in d.values() for n in c.values())
        video = next(videos.glob(label.stem + ".*"), None)
        if doc.get("lines") and truth > 0 and video is not None:
            out.append((label.stem, video, doc))
    return out


def clip_seconds(video: Path) -> float:
    import cv2  # noqa: PLC0415

    cap = cv2.VideoCapture(str(video))
    n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    return float(n / fps) if n > 0 else 0.0


def site_yaml(prefix: str, model: str, cams: list[dict[str, Any]]) -> str:
    from edge.evaluate import direction_names  # noqa: PLC0415

    parts = []
    for c in cams:
        lines = []
        for ln in c["lines"]:
            d = direction_names([tuple(p) for p in ln["points"]])
            lines.append(
                f"{{id: {ln['id']}, points: {json.dumps(ln['points'])}, "
                f"directions: {{positive: {d.positive}, negative: {d.negative}}}}}"
            )
        parts.append(
            f"""
  - id: {c["id"]}
    name: {c["id"]}
    location: {{lat: 10.0, lon: 106.0}}
    source: {{kind: file, path: "{c["video"]}", loop: {str(c["loop"]).lower()}}}
    detector: {{model: "{model}", classes: {json.dumps(LABEL_CLASSES)}}}
    lines: [{", ".join(lines)}]"""
        )
    return f"""
site: {{id: density, name: Density, timezone: UTC, center: {{lat: 10.0, lon: 106.0}}, bin_seconds: 60}}
mqtt_prefix: {prefix}
cameras:{"".join(parts)}
"""


class Counts:
    """A QoS 1 subscriber summing the counts messages of each camera."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        from contract import CountsMessage, HeartbeatMessage, parse_message, parse_topic  # noqa: PLC0415

        self.counted: dict[str, dict[tuple[str, str, str], int]] = {}
        self.heartbeats: dict[str, list[Any]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.last_message = time.monotonic()
        self.kinds: dict[str, int] = {}
        self.errors: list[str] = []

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            try:
                topic = parse_topic(msg.topic, prefix)
                m = parse_message(msg.payload, topic)
            except Exception as exc:
                if len(self.errors) < 5:
                    self.errors.append(f"{msg.topic}: {exc}"[:300])
                return
            with self.lock:
                self.last_message = time.monotonic()
                self.kinds[m.kind] = self.kinds.get(m.kind, 0) + 1
                if isinstance(m, CountsMessage):
                    cam = self.counted.setdefault(m.camera_id, {})
                    for c in m.lines:
                        key = (c.line_id, c.direction, c.cls)
                        cam[key] = cam.get(key, 0) + c.count
                elif isinstance(m, HeartbeatMessage):
                    self.heartbeats.setdefault(m.camera_id, []).append(m)

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"density-{prefix}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.ready.set()
        self.client.on_message = on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def score(counted: dict[tuple[str, str, str], int], totals: dict[str, Any]) -> tuple[float, int, int]:
    truth = {
        (ln, d, c): int(n) for ln, by_d in totals.items() for d, by_c in by_d.items() for c, n in by_c.items()
    }
    keys = set(truth) | set(counted)
    err = sum(abs(counted.get(k, 0) - truth.get(k, 0)) for k in keys)
    total = sum(truth.values())
    return (1.0 - err / total if total else 1.0), sum(counted.values()), total


def metrics(port: int) -> dict[str, dict[str, float]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if line.startswith("citywatch_edge_") and 'camera="' in line:
            name_labels, value = line.rsplit(" ", 1)
            name = name_labels.split("{", 1)[0].removeprefix("citywatch_edge_")
            cam = name_labels.split('camera="', 1)[1].split('"', 1)[0]
            out.setdefault(cam, {})[name] = float(value)
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(n: int, args: argparse.Namespace, labelled: list[Any], extras: list[Path]) -> dict[str, Any]:
    cams: list[dict[str, Any]] = []
    for name, video, doc in labelled[:n]:
        cams.append({"id": name, "video": video, "loop": False, "lines": doc["lines"], "doc": doc})
    i = 0
    while len(cams) < n and extras:
        video = extras[i % len(extras)]
        line = [{"id": "L1", "points": [[0.0, 0.6], [1.0, 0.6]]}]
        cams.append({"id": f"extra-{i}-{video.stem}"[:60], "video": video, "loop": True, "lines": line})
        i += 1
    prefix = f"cwdensity{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="cw-density-"))
    site = tmp / "site.yaml"
    site.write_text(site_yaml(prefix, args.model, cams), encoding="utf-8")
    counts = Counts("127.0.0.1", args.mqtt_port, prefix)
    if not counts.ready.wait(10):
        raise SystemExit(f"no MQTT broker answers on 127.0.0.1:{args.mqtt_port}")
    port = free_port()
    env = dict(os.environ, CITYWATCH_DELIVERY="broker", CITYWATCH_HEARTBEAT_S="5", PYTHONPATH=str(ROOT))
    log = (tmp / "edge.log").open("wb")
    cmd = [sys.executable, "-m", "citywatch.cli", "edge", "run", "--site", str(site), "--edge-id", prefix,
           "--outbox", str(tmp / "outbox"), "--metrics-port", str(port)]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    labelled_ids = [c["id"] for c in cams if "doc" in c]
    peak_rss = 0.0
    last: dict[str, dict[str, float]] = {}
    loads = []
    ended: dict[str, float] = {}
    deadline = t0 + args.max_run_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(1.0)
        peak_rss = max(peak_rss, rss_mb(proc.pid))
        loads.append(os.getloadavg()[0])
        try:
            last = metrics(port)
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
        except OSError as exc:
            if isinstance(exc, urllib.error.HTTPError):  # 503: some camera not streaming (ended)
                health = json.loads(exc.read())
            else:
                continue
        for cam_id, st in health.get("cameras", {}).items():
            if st.get("error") == "end of file" and cam_id not in ended:
                ended[cam_id] = time.monotonic()
        if labelled_ids and all(c in ended for c in labelled_ids):
            break
    rss_end = rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -9
    wall = time.monotonic() - t0
    quiet = time.monotonic() + 10
    while time.monotonic() < quiet and time.monotonic() - counts.last_message < 2.0:
        time.sleep(0.2)
    counts.close()
    clips = []
    for c in cams:
        m = last.get(c["id"], {})
        seconds = clip_seconds(c["video"]) if "doc" in c else wall
        row: dict[str, Any] = {
            "camera": c["id"],
            "labelled": "doc" in c,
            "analysed_fps": round(m.get("frames_analysed_total", 0) / max(seconds, 1e-6), 2),
            "detected_fps": round(m.get("frames_detected_total", 0) / max(seconds, 1e-6), 2),
            "skipped_motion": int(m.get("frames_skipped_motion_total", 0)),
            "queue_ms": m.get("detect_queue_ms"),
        }
        if "doc" in c:
            acc, counted, truth = score(counts.counted.get(c["id"], {}), c["doc"]["totals"])
            row.update(accuracy=round(acc, 4), counted=counted, truth=truth)
        clips.append(row)
    accs = [r["accuracy"] for r in clips if r["labelled"]]
    return {
        "cameras": n,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "rss_peak_mb": round(peak_rss, 1),
        "rss_end_mb": round(rss_end, 1),
        "load_avg_1m_mean": round(sum(loads) / len(loads), 2) if loads else None,
        "all_labelled_ge_095": bool(accs) and min(accs) >= 0.95,
        "min_accuracy": min(accs) if accs else None,
        "clips": clips,
        "messages": counts.kinds,
        "unreadable": counts.errors,
        "log": str(tmp / "edge.log"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolo11n_int8_openvino_model"))
    ap.add_argument("--cameras", default="1,4,8", help="camera counts to run, one worker each")
    ap.add_argument("--labels", default=str(SHARED / "labels"))
    ap.add_argument("--videos", default=str(SHARED / "videos"))
    ap.add_argument("--mqtt-port", type=int, default=1883)
    ap.add_argument("--max-run-s", type=float, default=120.0, help="cap on one run's length")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    labelled = labelled_clips(Path(args.labels), Path(args.videos))
    used = {v for _, v, _ in labelled}
    all_labels = {p.stem for p in Path(args.labels).glob("*.json")}
    extras = [
        v
        for v in sorted(Path(args.videos).iterdir())
        if v.suffix in {".mp4", ".avi", ".mkv"} and v not in used and v.stem not in all_labels
    ]
    runs = [run(int(n), args, labelled, extras) for n in args.cameras.split(",")]
    ok = [r["cameras"] for r in runs if r["all_labelled_ge_095"]]
    result = {
        "model": args.model,
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "largest_cameras_all_labelled_ge_095": max(ok) if ok else 0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for r in runs:
            print(
                f"{r['cameras']:3d} cameras: min accuracy {r['min_accuracy']}, "
                f"RSS peak {r['rss_peak_mb']} MB, load {r['load_avg_1m_mean']}"
            )
            for c in r["clips"]:
                print(f"    {c}")
        best = result["largest_cameras_all_labelled_ge_095"]
        print(f"largest camera count with every labelled clip >= 0.95: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
