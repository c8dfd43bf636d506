"""Memory of one edge process serving 4 cameras, over a bounded run.

    python bench/edge_memory.py --json [--minutes 10] [--model M]

Runs the real worker (capture threads, YOLO per camera, analytics, outbox, MQTT to the local broker)
on four looping clips and samples its resident set size; prints start and end RSS (start = after the
first minute's warm-up, or a tenth of the run if shorter) and the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))

CLIPS = [
    "vn-hcmc-motorbikes-wrongway.mp4",
    "fr-motorway-cctv-pedestrian-alarm.avi",
    "nl-motorway-overpass.mp4",
    "us-arterial-dusk-overhead.mp4",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolo11n_int8_openvino_model"))
    ap.add_argument("--max-fps", type=float, default=5.0, help="per camera analysis cap")
    ap.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import psutil  # noqa: PLC0415

    from citywatch.logs import setup_logging  # noqa: PLC0415
    from citywatch.site import parse_site  # noqa: PLC0415
    from edge.settings import EdgeSettings  # noqa: PLC0415
    from edge.worker import run_worker  # noqa: PLC0415

    setup_logging("WARNING")
    cams = "\n".join(
        f"""  - id: cam{i}
    name: Cam {i}
    location: {{lat: 13.77, lon: 109.22}}
    source: {{kind: file, path: "{SHARED / "videos" / clip}", loop: true}}
    detector: {{model: "{args.model}", max_fps: {args.max_fps}}}
    lines: [{{id: L1, points: [[0.0, 0.6], [1.0, 0.6]]}}]
    zones: [{{id: z, kind: restricted, polygon: [[0.7, 0.7], [1.0, 0.7], [1.0, 1.0], [0.7, 1.0]]}}]
    rules: [{{id: in, type: intrusion, zone: z}}, {{id: t, type: tampering}}]"""
        for i, clip in enumerate(CLIPS)
    )
    site = parse_site(
        "site: {id: bench, name: Bench, timezone: UTC, center: {lat: 13.77, lon: 109.22}, bin_seconds: 10}\n"
        f"mqtt_prefix: cwmem{os.getpid()}\ncameras:\n{cams}\n"
    )
    tmp = tempfile.mkdtemp(prefix="cw-mem-")
    settings = EdgeSettings.from_env(
        edge_id="mem-bench",
        outbox=tmp,
        metrics_port=0,
        env={"MQTT_URL": args.mqtt, "CITYWATCH_DELIVERY": "broker"},  # no server here
    )
    proc = psutil.Process()
    duration = args.minutes * 60
    warm = min(60.0, duration / 10)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()

    def sample() -> None:
        while time.monotonic() - t0 < duration + 5:
            samples.append((round(time.monotonic() - t0, 1), proc.memory_info().rss / 2**20))
            time.sleep(5)

    threading.Thread(target=sample, daemon=True).start()
    run_worker(site, settings, None, duration=duration)
    after_warm = [mb for t, mb in samples if t >= warm]
    result = {
        "cameras": len(CLIPS),
        "minutes": args.minutes,
        "max_fps_per_camera": args.max_fps,
        "rss_start_mb": round(after_warm[0], 1),
        "rss_end_mb": round(after_warm[-1], 1),
        "rss_peak_mb": round(max(after_warm), 1),
        "samples": len(samples),
    }
    print(json.dumps(result) if args.json else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
