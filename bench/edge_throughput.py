"""Edge throughput: the bare model against the full pipeline on the same frames, in one run.

    python bench/edge_throughput.py --json [--model M] [--video V] [--frames N] [--imgsz 640]

bare:      model.predict on frames decoded beforehand (same settings as the pipeline).
pipeline:  decode (own thread, as the capture thread does) -> detect -> track -> analytics (lines,
           zones, incident rules, tampering) -> outbox (SQLite, fsync) -> MQTT publish (QoS 1) to the
           local broker when one answers. Every frame is processed (no frame dropping), so the figure is
           the sustained processing rate.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolo11n_int8_openvino_model"))
    ap.add_argument("--video", default=str(SHARED / "videos" / "vn-hcmc-motorbikes-wrongway.mp4"))
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument(
        "--mqtt", default="mqtt://127.0.0.1:1883", help="broker for the publish stage ('' to skip)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from citywatch.site import load_site  # noqa: PLC0415
    from contract.messages import StreamState  # noqa: PLC0415
    from edge.capture import iter_file_frames  # noqa: PLC0415
    from edge.detect import UltralyticsTracker  # noqa: PLC0415
    from edge.emit import Emitter  # noqa: PLC0415
    from edge.outbox import Outbox  # noqa: PLC0415
    from edge.pipeline import CameraPipeline  # noqa: PLC0415
    from edge.publisher import CameraPublisher  # noqa: PLC0415
    from edge.settings import MqttSettings  # noqa: PLC0415

    site = load_site(ROOT / "config" / "quynhon.yaml", env={})
    camera = site.camera("cam-tran-hung-dao")
    settings = camera.detector.model_copy(update={"model": args.model, "imgsz": args.imgsz})
    camera = camera.model_copy(update={"detector": settings})
    start = datetime.now(UTC)
    frames = [f.image for _, f in zip(range(args.frames), iter_file_frames(args.video, start), strict=False)]
    while len(frames) < args.frames:  # short clips: loop
        frames += frames[: args.frames - len(frames)]

    # -- bare model ---------------------------------------------------------------------------------
    bare = UltralyticsTracker(settings)
    for img in frames[: args.warmup]:
        bare.detect_raw(img)
    t0 = time.perf_counter()
    for img in frames:
        bare.detect_raw(img)
    bare_s = time.perf_counter() - t0

    # -- full pipeline --------------------------------------------------------------------------------
    det = UltralyticsTracker(settings)
    for img in frames[: args.warmup]:
        det.detect_raw(img)
    tmp = tempfile.mkdtemp(prefix="cw-bench-")
    outbox = Outbox(Path(tmp) / "outbox.sqlite3")
    emitter = Emitter(site.site.id, "bench", camera.id, f"cwbench{os.getpid()}", outbox)
    pipe = CameraPipeline(camera, 10, emitter, target_fps=None)
    publisher = None
    if args.mqtt:
        publisher = CameraPublisher(
            outbox,
            MqttSettings.from_url(args.mqtt),
            site.site.id,
            "bench",
            camera.id,
            f"cwbench{os.getpid()}",
            emitter.status(start, state=StreamState.OFFLINE, reason="bench"),
        )
        publisher.start()
    stage = {"decode": 0.0, "detect": 0.0, "track": 0.0, "analytics": 0.0, "publish": 0.0}
    q: queue.Queue[Any] = queue.Queue(maxsize=4)

    def reader() -> None:
        n = 0
        while n < args.frames:
            for f in iter_file_frames(args.video, start):
                q.put(f)
                n += 1
                if n >= args.frames:
                    break
        q.put(None)

    # Decode cost measured on its own (it overlaps with inference on another core in the pipeline).
    t = time.perf_counter()
    for _ in zip(range(args.frames), iter_file_frames(args.video, start), strict=False):
        pass
    stage["decode"] = time.perf_counter() - t

    threading.Thread(target=reader, daemon=True).start()
    written_before = outbox.written
    t0 = time.perf_counter()
    n = 0
    while (frame := q.get()) is not None:
        a = time.perf_counter()
        raw = det.detect_raw(frame.image)
        b = time.perf_counter()
        dets = det.update_tracks(raw, frame.image)
        c = time.perf_counter()
        w = outbox.written
        pipe.process(frame.image, frame.captured_at, dets)
        d = time.perf_counter()
        stage["detect"] += b - a
        stage["track"] += c - b
        # Outbox writes happen inside process(); attribute their time to "publish".
        if outbox.written != w:
            stage["publish"] += d - c
        else:
            stage["analytics"] += d - c
        n += 1
    pipe.close(datetime.now(UTC))
    pipe_s = time.perf_counter() - t0
    if publisher is not None:
        deadline = time.monotonic() + 10
        while outbox.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
        publisher.stop()

    bare_fps = args.frames / bare_s
    pipeline_fps = n / pipe_s
    result = {
        "model": args.model,
        "video": args.video,
        "frames": args.frames,
        "imgsz": args.imgsz,
        "bare_fps": round(bare_fps, 2),
        "pipeline_fps": round(pipeline_fps, 2),
        "ratio": round(pipeline_fps / bare_fps, 3),
        "stage_ms_per_frame": {k: round(v / n * 1000, 2) for k, v in stage.items()},
        "decode_overlapped": True,
        "messages_written": outbox.written - written_before,
        "messages_published": publisher.published if publisher else 0,
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
