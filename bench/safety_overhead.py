"""Per-frame cost of the road-safety rules and the evidence ring, side by side on the same frames.

    python bench/safety_overhead.py --json [--video V] [--cache DIR] [--repeat N]

The clip's tracked detections are recorded once (edge/recorded.py; the YOLO time is not what is
measured here), its frames decoded once into memory; then the camera pipeline (``process``) runs over
them three ways: road safety and evidence off (the pipeline before issue 15), road safety on, road
safety and evidence on. Figures are milliseconds per frame of ``process`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def main() -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(SHARED / "videos" / "bd-dhaka-congested-mixed.mp4"))
    ap.add_argument("--model", default=str(SHARED / "models" / "yolo11n_int8_openvino_model"))
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "recordings"))
    ap.add_argument("--repeat", type=int, default=3, help="runs of each variant (the best is kept)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import cv2  # noqa: PLC0415

    from citywatch.site_safety import EvidenceSettings  # noqa: PLC0415
    from edge.detect import UltralyticsTracker  # noqa: PLC0415
    from edge.emit import Emitter, MemorySink  # noqa: PLC0415
    from edge.evaluate_events import default_site  # noqa: PLC0415
    from edge.pipeline import CameraPipeline  # noqa: PLC0415
    from edge.recorded import RecordingDetector, ReplayedDetector, recording_key  # noqa: PLC0415

    video = Path(args.video)
    _, camera = default_site(video, args.model)
    ds = camera.detector
    cached = Path(args.cache) / recording_key(video, ds.model, 1, ds.conf, ds.imgsz)
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames: list[Any] = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    if not cached.exists():
        rec = RecordingDetector(UltralyticsTracker(ds))
        for img in frames:
            rec.track(img)
        rec.save(cached)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    variants = {
        "baseline (road safety off, evidence off)": {
            "road_safety": False,
            "evidence": EvidenceSettings(enabled=False),
        },
        "road safety on": {"road_safety": True, "evidence": EvidenceSettings(enabled=False)},
        "road safety + evidence ring": {"road_safety": True, "evidence": EvidenceSettings()},
    }
    out: dict[str, Any] = {
        "video": video.name,
        "frames": len(frames),
        "width": frames[0].shape[1],
        "variants": {},
    }
    for name, update in variants.items():
        best: list[float] | None = None
        for _ in range(args.repeat):
            cam = camera.model_copy(update=update)
            det = ReplayedDetector(cached)
            pipe = CameraPipeline(cam, 60, Emitter("bench", "bench", cam.id, "cw", MemorySink()))
            times = []
            for i, img in enumerate(frames):
                dets = det.track(img)
                t0 = time.perf_counter()
                pipe.process(img, start + timedelta(seconds=i / fps), dets)
                times.append((time.perf_counter() - t0) * 1000)
            pipe.close(start + timedelta(seconds=len(frames) / fps))
            if best is None or statistics.mean(times) < statistics.mean(best):
                best = times
        assert best is not None
        best.sort()
        out["variants"][name] = {
            "mean_ms": round(statistics.mean(best), 3),
            "p95_ms": round(best[int(0.95 * (len(best) - 1))], 3),
        }
    if args.json:
        print(json.dumps(out))
    else:
        for name, v in out["variants"].items():
            print(f"{name:45} mean {v['mean_ms']:.3f} ms/frame  p95 {v['p95_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
