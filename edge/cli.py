"""Registers ``citywatch edge run``, ``citywatch edge replay`` and ``citywatch eval``.

Kept light: torch, OpenCV and Ultralytics are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = os.environ.get(
    "CITYWATCH_MODEL", str((ROOT.parent / "shared" / "models" / "yolo11n_int8_openvino_model").resolve())
)


def _load(site: str) -> Any:
    from citywatch.site import ConfigError, load_site  # noqa: PLC0415

    try:
        return load_site(site)
    except ConfigError as exc:
        print(f"{exc.source}: invalid site config", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        raise SystemExit(2) from exc


def _cmd_run(args: argparse.Namespace) -> int:
    import logging  # noqa: PLC0415

    from edge.settings import EdgeSettings  # noqa: PLC0415
    from edge.worker import EXIT_STUCK, run_worker  # noqa: PLC0415

    site = _load(args.site)
    settings = EdgeSettings.from_env(
        edge_id=args.edge_id, outbox=args.outbox, metrics_port=args.metrics_port, model=args.model
    )
    code = run_worker(site, settings, args.camera or None, duration=args.duration)
    if code == EXIT_STUCK:
        # A camera thread is stuck in native code: do not let interpreter shutdown wait on it.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _cmd_replay(args: argparse.Namespace) -> int:
    from edge.errors import EdgeError  # noqa: PLC0415
    from edge.replay import detector_for, replay, write_json  # noqa: PLC0415

    site = _load(args.site)
    try:
        camera = site.camera(args.camera)
    except KeyError:
        print(f"camera {args.camera!r} is not in {args.site}", file=sys.stderr)
        return 2
    camera = camera.model_copy(update={"detector": detector_for(camera.detector, args.model)})
    try:
        result = replay(args.video, site, camera, stride=args.stride)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    doc = write_json(result, Path(args.json))
    print(f"{result.frames} frames in {result.seconds:.1f} s: {len(doc['messages'])} messages -> {args.json}")
    return 0


def _cmd_eval_events(args: argparse.Namespace) -> int:
    from edge.errors import EdgeError  # noqa: PLC0415
    from edge.evaluate import LabelError  # noqa: PLC0415
    from edge.evaluate_events import default_site, evaluate_events  # noqa: PLC0415
    from edge.replay import detector_for  # noqa: PLC0415

    if args.site:
        site = _load(args.site)
        try:
            camera = site.camera(args.camera) if args.camera else site.cameras[0]
        except KeyError:
            print(f"camera {args.camera!r} is not in {args.site}", file=sys.stderr)
            return 2
        camera = camera.model_copy(update={"detector": detector_for(camera.detector, args.model)})
    else:
        site, camera = default_site(Path(args.video), args.model, conf=args.conf)
    try:
        report = evaluate_events(
            Path(args.labels), Path(args.video), site, camera, stride=args.stride, tolerance_s=args.tolerance
        )
    except (EdgeError, LabelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['video']}: {report['frames']} frames, {report['events']} labelled event(s)")
    for m in report["matched"]:
        print(f"  matched {m['type']:15} frames {m['frames']}  time to alert {m['time_to_alert_s']:.2f} s")
    for m in report["missed"]:
        print(f"  missed  {m['type']:15} frames {m['frames']}")
    for fa in report["false_alarm_incidents"]:
        print(f"  false alarm {fa['type']} at {fa['start_s']} s: {fa['summary']}")
    print(
        f"recall {report['recall']}  precision {report['precision']}  false alarms {report['false_alarms']}"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from edge.errors import EdgeError  # noqa: PLC0415
    from edge.evaluate import LabelError, evaluate  # noqa: PLC0415

    if args.events:
        return _cmd_eval_events(args)

    try:
        report = evaluate(Path(args.labels), Path(args.video), args.model, stride=args.stride, conf=args.conf)
    except (EdgeError, LabelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['video']}: {report['frames']} frames in {report['seconds']} s (model {report['model']})")
    print(f"{'line':6} {'direction':10} {'class':11} {'counted':>7} {'truth':>6}")
    for c in report["cells"]:
        print(f"{c['line']:6} {c['direction']:10} {c['class']:11} {c['counted']:7d} {c['truth']:6d}")
    print(
        f"overall count accuracy: {report['overall_accuracy']:.3f} "
        f"({report['counted_total']} counted, {report['truth_total']} true)"
    )
    return 0


def register(sub: Any) -> None:
    edge = sub.add_parser("edge", help="edge worker: run cameras, replay a file")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True, metavar="ACTION")

    p = edge_sub.add_parser("run", help="serve cameras of a site: detect, count, publish over MQTT")
    p.add_argument("--site", required=True, help="site config YAML")
    p.add_argument("--camera", action="append", help="camera id (repeat; default: every camera)")
    p.add_argument("--edge-id", default=None, help="this worker's id (default: EDGE_ID or the host name)")
    p.add_argument("--outbox", default=None, help="outbox folder (default: CITYWATCH_OUTBOX or ./.outbox)")
    p.add_argument("--metrics-port", type=int, default=None, help="health/metrics HTTP port (default 9108)")
    p.add_argument("--model", default=None, help="override every camera's detector model")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(handler=_cmd_run)

    p = edge_sub.add_parser("replay", help="process a video file as fast as possible; write all messages")
    p.add_argument("video")
    p.add_argument("--site", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--json", required=True, help="output file")
    p.add_argument("--model", default=None)
    p.add_argument(
        "--stride", type=int, default=None, help="analyse every n-th frame (default: from max_fps)"
    )
    p.set_defaults(handler=_cmd_replay)

    p = sub.add_parser("eval", help="measure counting (or, with --events, incident) accuracy against labels")
    p.add_argument("--labels", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--stride", type=int, default=1, help="analyse every n-th frame (frame skipping)")
    p.add_argument("--conf", type=float, default=0.1)
    p.add_argument("--json", action="store_true", help="print only a JSON object")
    p.add_argument(
        "--events",
        action="store_true",
        help="score raised incidents against the label file's events instead of counts",
    )
    p.add_argument(
        "--site", default=None, help="with --events: site config (default: an unconfigured camera)"
    )
    p.add_argument("--camera", default=None, help="with --events and --site: camera id (default: the first)")
    p.add_argument("--tolerance", type=float, default=2.0, help="with --events: seconds of slack (default 2)")
    p.set_defaults(handler=_cmd_eval)
