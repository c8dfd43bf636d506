"""``citywatch broker auth``: Mosquitto password file and ACL from the site config."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _cmd_broker_auth(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from citywatch.broker_auth import BrokerAuthError, write_auth_files  # noqa: PLC0415
    from citywatch.site import ConfigError, load_site  # noqa: PLC0415

    owner = None
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        if not (uid.isdigit() and gid.isdigit()):
            print("error: --owner must be UID:GID, e.g. 1883:1883", file=sys.stderr)  # noqa: T201
            return 2
        owner = (int(uid), int(gid))
    try:
        cfg = load_site(args.site)
        files = write_auth_files(
            cfg,
            Path(args.out),
            Path(args.env_file),
            source=args.site,
            iterations=args.iterations,
            owner=owner,
        )
    except (ConfigError, BrokerAuthError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    # Names only: passwords stay in the env file.
    print(f"wrote {files.acl} and {files.passwd} for: {', '.join(files.users)}")  # noqa: T201
    if files.generated:
        print(f"generated into {args.env_file}: {', '.join(files.generated)}")  # noqa: T201
    return 0


def register(sub: Any) -> None:
    """Add ``broker auth`` to the ``citywatch`` sub-commands."""
    broker = sub.add_parser("broker", help="MQTT broker tools")
    broker_sub = broker.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    p = broker_sub.add_parser(
        "auth",
        help="write the Mosquitto passwd and acl for the site's edge groups and the server",
        description="Passwords come from MQTT_SERVER_PASSWORD / MQTT_EDGE_<GROUP>_PASSWORD in the "
        "environment or the env file; missing ones are generated and appended to the env file (0600).",
    )
    p.add_argument("--site", required=True, help="site config YAML")
    p.add_argument("--out", default="deploy/mosquitto", help="folder for acl and passwd")
    p.add_argument("--env-file", default=".env", help="env file with the passwords (default .env)")
    p.add_argument("--iterations", type=int, default=101, help="PBKDF2 iterations (default 101)")
    p.add_argument(
        "--owner",
        metavar="UID:GID",
        help="chown passwd (mode 0600) to the broker's user; 1883:1883 for the eclipse-mosquitto image",
    )
    p.set_defaults(handler=_cmd_broker_auth)
