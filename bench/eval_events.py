"""Incident (event) scoring of the real pipeline on every clip in ../shared/videos.

Clips with a label file are scored against its ``events``; clips with none (and labelled clips without
events, the counting clips) have no events, so every incident raised on them is a false alarm. Each
camera is one nobody configured: the road-safety rules run with their defaults over the whole frame.

    python bench/eval_events.py --json [--model M] [--stride N] [--cache DIR]

``--cache DIR`` keeps each clip's tracked detections (edge/recorded.py) so that a second run scores
rule changes without running YOLO again; leave it out to measure the whole pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


def _one(video: Path, label: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    from edge.detect import UltralyticsTracker  # noqa: PLC0415
    from edge.evaluate_events import default_site, evaluate_events  # noqa: PLC0415
    from edge.recorded import RecordingDetector, ReplayedDetector, recording_key  # noqa: PLC0415

    site, camera = default_site(video, args.model)
    detector: Any = None
    recorder: RecordingDetector | None = None
    cached: Path | None = None
    if args.cache:
        ds = camera.detector
        cached = Path(args.cache) / recording_key(video, ds.model, args.stride, ds.conf, ds.imgsz)
        if cached.exists():
            detector = ReplayedDetector(cached)
        else:
            detector = recorder = RecordingDetector(UltralyticsTracker(ds))
    report = evaluate_events(
        label, video, site, camera, stride=args.stride, tolerance_s=args.tolerance, detector=detector
    )
    if recorder is not None and cached is not None:
        recorder.save(cached)
    return report


def main() -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolo11n_int8_openvino_model"))
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=2.0, help="seconds of slack on each side")
    ap.add_argument("--labels", default=str(SHARED / "labels"))
    ap.add_argument("--videos", default=str(SHARED / "videos"))
    ap.add_argument("--only", action="append", help="clip name stem (repeat); default: every clip")
    ap.add_argument("--cache", default=None, help="folder for recorded detections (see above)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    rows = []
    for video in sorted(p for p in Path(args.videos).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
        if args.only and video.stem not in args.only:
            continue
        label = Path(args.labels) / f"{video.stem}.json"
        report = _one(video, label if label.exists() else None, args)
        rows.append({"clip": video.stem, **report})
        if not args.json:
            tta = ", ".join(f"{x:.1f}" for x in report["time_to_alert_s"]) or "-"
            print(
                f"{video.stem:40} events {report['events']:2d} matched {len(report['matched']):2d} "
                f"false alarms {report['false_alarms']:2d}  time to alert {tta}",
                flush=True,
            )
            for fa in report["false_alarm_incidents"]:
                print(f"    false alarm {fa['type']} at {fa['start_s']} s: {fa['summary']}")
            for m in report["missed"]:
                print(f"    missed {m['type']} frames {m['frames']}")
    events = sum(r["events"] for r in rows)
    hits = sum(len(r["matched"]) for r in rows)
    fas = sum(r["false_alarms"] for r in rows)
    per_type: dict[str, dict[str, int]] = {}
    for r in rows:
        for ty, st in r["per_type"].items():
            acc = per_type.setdefault(ty, {"events": 0, "matched": 0, "false_alarms": 0})
            for k in acc:
                acc[k] += st[k]
    summary = {
        "clips": len(rows),
        "events": events,
        "matched": hits,
        "recall": round(hits / events, 4) if events else None,
        "precision": round(hits / (hits + fas), 4) if hits + fas else None,
        "false_alarms": fas,
        "per_type": per_type,
    }
    if args.json:
        print(json.dumps({"summary": summary, "clips": rows}))
    else:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
