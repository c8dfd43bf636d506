"""Config push: how fast a pushed config reaches a running edge and applies, and what it costs the
other cameras of that edge.

    python bench/config_push.py --json [--cameras 3] [--pushes 10] [--model M | --fake] [--baseline-s 10]

One worker (in this process, config push on) serves ``--cameras`` cameras, each a real clip from
../shared/videos played in real time and looped, with the real shared detector (``--model``, default the
OpenVINO int8 YOLO11n of ../shared/models; ``--fake`` replaces it by a detector that finds nothing, to
isolate the push machinery). After a warm-up, the other cameras' analysed fps is read from their
heartbeats (1 s) for ``--baseline-s``; then ``--pushes`` configs are published, retained, on the
group's config topic, each moving camera 0's counting line (so camera 0 is stopped and started again:
the costliest change short of a new model). Per push: the time from publish to the edge's announcement
of that version (``apply``). Printed: ``apply_p50_s``, ``apply_p95_s``, ``apply_max_s`` and
``others_fps_dip`` = 1 - (mean analysed fps of the other cameras during the pushes) / (the same before),
plus the load average. Mosquitto: ``--mqtt`` (default mqtt://127.0.0.1:1883), a unique topic prefix.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))

import numpy as np  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from citywatch.site import parse_site  # noqa: E402
from contract.fleet import EdgeConfig, announce_topic, config_topic, dump  # noqa: E402
from edge.detections import Detections  # noqa: E402
from edge.settings import EdgeSettings  # noqa: E402
from edge.worker import run_worker  # noqa: E402

DEFAULT_MODEL = SHARED / "models" / "yolo11n_int8_openvino_model"


class NoDetector:
    def track(self, image: np.ndarray[Any, Any]) -> Detections:
        return Detections.empty()

    def reset(self) -> None:
        return


def camera(i: int, clip: Path, model: str, y: float) -> dict[str, Any]:
    return {
        "id": f"cam-{i}",
        "name": f"cam {i}",
        "location": {"lat": 10.0, "lon": 106.0},
        "group": "bench",
        "source": {"kind": "file", "path": str(clip), "loop": True},
        "detector": {"model": model, "max_fps": 10},
        "lines": [{"id": "L1", "points": [[0.0, y], [1.0, y]]}],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--pushes", type=int, default=10)
    ap.add_argument("--baseline-s", type=float, default=10.0)
    ap.add_argument("--warmup-s", type=float, default=8.0)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--fake", action="store_true", help="a detector that finds nothing (no model)")
    ap.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    args = ap.parse_args()
    clips = sorted(p for p in (SHARED / "videos").glob("*.mp4"))[: args.cameras]
    if len(clips) < args.cameras:
        clips = (clips * args.cameras)[: args.cameras]
    prefix = f"cwbench{uuid.uuid4().hex[:8]}"
    cams = [camera(i, clip, args.model, 0.5) for i, clip in enumerate(clips)]
    text = (
        "site: {id: bench, name: Bench, timezone: UTC, center: {lat: 10, lon: 106}}\n"
        f"mqtt_prefix: {prefix}\ncameras:\n" + "".join(f"  - {json.dumps(c)}\n" for c in cams)
    )
    site = parse_site(text, "bench")
    tmp = Path(tempfile.mkdtemp(prefix="cw-config-push-"))
    settings = EdgeSettings.from_env(
        edge_id="bench-edge",
        outbox=str(tmp),
        metrics_port=0,
        env={
            "MQTT_URL": args.mqtt,
            "CITYWATCH_DELIVERY": "broker",
            "CITYWATCH_HEARTBEAT_S": "1",
            "CITYWATCH_CONFIG_PUSH": "on",
        },
    )
    beats: list[tuple[float, str, float]] = []
    announces: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    host_port = args.mqtt.split("://", 1)[1]
    host, port = host_port.rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        if not m.payload:
            return
        now = time.monotonic()
        body = json.loads(m.payload)
        if m.topic.endswith("/heartbeat"):
            beats.append((now, body["camera_id"], float(body["fps"])))
        elif "/edges/" in m.topic:
            announces.put((now, body))

    client.on_message = on_message
    client.connect(host, int(port))
    client.subscribe(f"{prefix}/#", qos=1)
    client.loop_start()
    stop = threading.Event()
    factory = (lambda _c: NoDetector()) if args.fake else None
    worker = threading.Thread(
        target=run_worker, args=(site, settings, None, None, factory, stop), daemon=True, name="bench-worker"
    )
    worker.start()
    ctopic = config_topic("bench", "bench", prefix)
    applies: list[float] = []
    try:
        time.sleep(args.warmup_s)
        t_base = time.monotonic()
        time.sleep(args.baseline_s)
        t_push = time.monotonic()
        for v in range(1, args.pushes + 1):
            moved = [camera(0, clips[0], args.model, 0.4 + 0.02 * (v % 5)), *cams[1:]]
            cfg = EdgeConfig(site_id="bench", group="bench", version=v, cameras=moved, ts=datetime.now(UTC))
            sent = time.monotonic()
            client.publish(ctopic, dump(cfg), qos=1, retain=True)
            while True:
                at, body = announces.get(timeout=30)
                if body.get("config_version") == v or body.get("rejected_version") == v:
                    if body.get("rejected_version") == v:
                        raise SystemExit(f"config {v} rejected: {body.get('config_error')}")
                    applies.append(at - sent)
                    break
            time.sleep(1.0)  # one push a second: the others' fps is read over the whole period
        t_end = time.monotonic()
    finally:
        stop.set()
        worker.join(30)
        client.publish(ctopic, b"", qos=1, retain=True).wait_for_publish(5)
        client.publish(announce_topic("bench", "bench", prefix), b"", qos=1, retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
    others = {c["id"] for c in cams[1:]}

    def mean_fps(a: float, b: float) -> float:
        vals = [fps for t, cam, fps in beats if a <= t <= b and cam in others]
        return statistics.fmean(vals) if vals else 0.0

    base, during = mean_fps(t_base, t_push), mean_fps(t_push + 1.0, t_end + 1.0)
    applies.sort()
    p95 = applies[max(0, math.ceil(0.95 * len(applies)) - 1)]  # nearest rank
    result = {
        "cameras": args.cameras,
        "pushes": len(applies),
        "model": "none (--fake)" if args.fake else Path(args.model).name,
        "apply_p50_s": round(statistics.median(applies), 3),
        "apply_p95_s": round(p95, 3),
        "apply_max_s": round(applies[-1], 3),
        "others_fps_before": round(base, 2),
        "others_fps_during": round(during, 2),
        "others_fps_dip": round(max(0.0, 1 - during / base), 3) if base else None,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:20} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
