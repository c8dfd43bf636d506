"""Registers ``citywatch edge ...`` and ``citywatch eval``; heavy imports happen in the handlers."""

from __future__ import annotations

import argparse
from typing import Any


def _not_yet(args: argparse.Namespace) -> int:
    raise SystemExit(f"citywatch {args.command}: not available in this build yet")


def register(sub: Any) -> None:
    edge = sub.add_parser("edge", help="edge worker: run cameras, replay a file")
    edge.set_defaults(handler=_not_yet)
    ev = sub.add_parser("eval", help="measure counting accuracy against a label file")
    ev.set_defaults(handler=_not_yet)
