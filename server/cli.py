"""Registers ``citywatch server run|migrate``; heavy imports happen in the handlers."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_run(args: argparse.Namespace) -> int:
    from server.main import run  # noqa: PLC0415

    return run(ingest=not args.no_ingest)


def _cmd_migrate(_: argparse.Namespace) -> int:
    from server.main import migrate_only  # noqa: PLC0415

    return migrate_only()


def register(sub: Any) -> None:
    server = sub.add_parser("server", help="server: MQTT ingest, storage, history and live APIs")
    actions = server.add_subparsers(dest="server_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "run", help="wait for the database, migrate, then serve the API and ingest MQTT (settings: env)"
    )
    p.add_argument("--no-ingest", action="store_true", help="serve the API only (no MQTT subscriber)")
    p.set_defaults(handler=_cmd_run)
    p = actions.add_parser("migrate", help="apply pending database migrations and TimescaleDB policies")
    p.set_defaults(handler=_cmd_migrate)
