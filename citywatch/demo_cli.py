"""Registers ``citywatch demo``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cmd_demo(args: argparse.Namespace) -> int:
    from citywatch.demo import run_demo  # noqa: PLC0415

    return run_demo(Path(args.site), http_port=args.port, cameras=args.camera, history_days=args.history)


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the whole system on the Quy Nhơn demo site (private broker and database unless "
        "MQTT_URL / DATABASE_URL are set)",
    )
    demo.add_argument("--site", default=str(ROOT / "config" / "quynhon.yaml"))
    demo.add_argument("--port", type=int, default=8000, help="HTTP port of the server")
    demo.add_argument("--camera", action="append", help="only these cameras (repeat)")
    demo.add_argument(
        "--history",
        type=int,
        default=28,
        metavar="DAYS",
        help="fill this many past days with sample counts from the clips, flagged as sample (0: none)",
    )
    demo.set_defaults(handler=_cmd_demo)
