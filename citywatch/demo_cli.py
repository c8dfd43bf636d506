"""Registers ``citywatch demo``."""

from __future__ import annotations

import argparse
from typing import Any


def _not_yet(args: argparse.Namespace) -> int:
    raise SystemExit(f"citywatch {args.command}: not available in this build yet")


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the whole system on the Quy Nhơn demo site")
    demo.set_defaults(handler=_not_yet)
