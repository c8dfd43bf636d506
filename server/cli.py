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


def _dsn() -> str:
    from server.settings import Settings  # noqa: PLC0415

    return Settings.from_env().database_url.get_secret_value()


def _cmd_user(args: argparse.Namespace) -> int:
    """``user add|list|disable|enable|password``: against DATABASE_URL (migrated first)."""
    import getpass  # noqa: PLC0415
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from server.auth import users  # noqa: PLC0415
    from server.main import migrate_only  # noqa: PLC0415

    if migrate_only() != 0:
        return 1
    dsn = _dsn()
    try:
        if args.user_command == "list":
            for u in users.list_users(dsn):
                scope = ",".join(u.camera_groups) if u.camera_groups is not None else "*"
                state = "disabled" if u.disabled else "active"
                print(f"{u.username:24} {u.role.value:9} {state:8} groups={scope} {u.display_name}")
            return 0
        if args.user_command in {"disable", "enable"}:
            users.set_disabled(dsn, args.username, args.user_command == "disable")
            print(f"user {args.username!r} {args.user_command}d")
            return 0
        # add / password: the password from CITYWATCH_PASSWORD, stdin (--password-stdin) or a prompt.
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = os.environ.get("CITYWATCH_PASSWORD") or getpass.getpass(
                f"password for {args.username}: "
            )
        if args.user_command == "password":
            users.set_password(dsn, args.username, password)
            print(f"password of {args.username!r} changed; their tokens are revoked")
            return 0
        groups = args.groups.split(",") if args.groups else None
        users.create_user(dsn, args.username, password, args.role, groups, args.display_name)
        print(f"user {args.username!r} added with role {args.role}")
        return 0
    except users.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _cmd_apikey(args: argparse.Namespace) -> int:
    import sys  # noqa: PLC0415

    from server.auth import users  # noqa: PLC0415
    from server.main import migrate_only  # noqa: PLC0415

    if migrate_only() != 0:
        return 1
    try:
        groups = args.groups.split(",") if args.groups else None
        key = users.create_api_key(_dsn(), args.name, args.role, "cli", groups)
    except users.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(key)
    return 0


def _cmd_purge_evidence(args: argparse.Namespace) -> int:
    """Delete snapshots and clips past their retention period (site config ``evidence_retention``)."""
    import asyncio  # noqa: PLC0415
    import json  # noqa: PLC0415
    from dataclasses import asdict  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from citywatch.site import load_site  # noqa: PLC0415
    from server.main import migrate_only  # noqa: PLC0415
    from server.retention import purge_evidence  # noqa: PLC0415
    from server.settings import Settings  # noqa: PLC0415

    if migrate_only() != 0:
        return 1
    settings = Settings.from_env()
    site = load_site(settings.site_path)

    async def run() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url.get_secret_value(), autocommit=True
        ) as conn:
            result = await purge_evidence(
                conn, site.evidence_retention, datetime.now(UTC), settings.snapshot_dir, dry_run=args.dry_run
            )
        return asdict(result)

    print(json.dumps({"dry_run": args.dry_run, **asyncio.run(run())}))
    return 0


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

    roles = ["admin", "operator", "police", "planner"]
    user = actions.add_parser("user", help="manage users (DATABASE_URL)")
    uacts = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    for name, helptext in (("add", "add a user"), ("password", "set a user's password (revokes tokens)")):
        p = uacts.add_parser(name, help=helptext)
        p.add_argument("username")
        if name == "add":
            p.add_argument("--role", required=True, choices=roles)
            p.add_argument("--groups", help="comma-separated camera groups the user sees (default: all)")
            p.add_argument("--display-name", default=None)
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from stdin (else CITYWATCH_PASSWORD, else a prompt)",
        )
        p.set_defaults(handler=_cmd_user)
    p = uacts.add_parser("list", help="list users")
    p.set_defaults(handler=_cmd_user)
    for name in ("disable", "enable"):
        p = uacts.add_parser(name, help=f"{name} a user (disabling revokes their tokens)")
        p.add_argument("username")
        p.set_defaults(handler=_cmd_user)

    p = actions.add_parser(
        "purge-evidence", help="delete snapshots and clips past their retention period (audited)"
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.set_defaults(handler=_cmd_purge_evidence)

    p = actions.add_parser("apikey", help="create an API key for a machine; prints it once")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--groups", help="comma-separated camera groups (default: all)")
    p.set_defaults(handler=_cmd_apikey)
