"""Registers ``citywatch server ...``; heavy imports happen in the handlers."""

from __future__ import annotations

import argparse
from typing import Any


def _not_yet(args: argparse.Namespace) -> int:
    raise SystemExit(f"citywatch {args.command}: not available in this build yet")


def register(sub: Any) -> None:
    server = sub.add_parser("server", help="server: run, migrate, manage users")
    server.set_defaults(handler=_not_yet)
