"""The ``citywatch`` command line.

Sub-commands register themselves from light modules (``edge.cli``, ``server.cli``) so that
``citywatch --help`` never imports torch or psycopg; heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from citywatch import __version__
from citywatch.logs import setup_logging
from citywatch.site import ConfigError, load_site

Handler = Callable[[argparse.Namespace], int]


def _cmd_version(_: argparse.Namespace) -> int:
    from contract.messages import SCHEMA_VERSION  # noqa: PLC0415

    print(f"citywatch {__version__} (wire contract v{SCHEMA_VERSION})")
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_site(args.file)
    except ConfigError as exc:
        if args.json:
            print(
                json.dumps(
                    {
                        "valid": False,
                        "errors": [
                            {"path": i.path, "line": i.line, "message": i.message} for i in exc.issues
                        ],
                    }
                )
            )
        else:
            print(f"{exc.source}: {len(exc.issues)} error(s)", file=sys.stderr)
            for issue in exc.issues:
                print(f"  {issue}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"valid": True, "site": cfg.site.id, "cameras": [c.id for c in cfg.cameras]}))
    else:
        n_lines = sum(len(c.lines) for c in cfg.cameras)
        n_zones = sum(len(c.zones) for c in cfg.cameras)
        n_rules = sum(len(c.rules) for c in cfg.cameras)
        print(
            f"{args.file}: valid: site {cfg.site.id!r}, {len(cfg.cameras)} camera(s), "
            f"{n_lines} line(s), {n_zones} zone(s), {n_rules} rule(s)"
        )
    return 0


def _cmd_contract_schemas(args: argparse.Namespace) -> int:
    from contract.schema import write_schemas  # noqa: PLC0415

    stale = write_schemas(args.out, check=args.check)
    if args.check and stale:
        print("stale JSON Schemas (run `citywatch contract schemas`): " + ", ".join(stale), file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote JSON Schemas to {args.out}")
    return 0


def _cmd_assets_fetch(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from citywatch.assets import AssetError, fetch, read_manifest  # noqa: PLC0415

    default = "sample_videos/clips" if args.kind == "videos" else "models/exports"
    try:
        paths = fetch(read_manifest(args.kind), Path(args.dest or default))
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citywatch",
        description="Smart-city traffic and security monitoring: edge workers, server, demo.",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(handler=_cmd_version)

    cfg = sub.add_parser("config", help="site config tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    p = cfg_sub.add_parser("check", help="validate a site config file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_cmd_config_check)

    con = sub.add_parser("contract", help="wire contract tools")
    con_sub = con.add_subparsers(dest="contract_command", required=True, metavar="ACTION")
    p = con_sub.add_parser("schemas", help="write the JSON Schemas of every payload")
    p.add_argument("--out", default="schemas", help="output folder (default: schemas)")
    p.add_argument("--check", action="store_true", help="only check that the files are current")
    p.set_defaults(handler=_cmd_contract_schemas)

    assets = sub.add_parser("assets", help="download sample clips and models from their manifests")
    assets_sub = assets.add_subparsers(dest="assets_command", required=True, metavar="ACTION")
    p = assets_sub.add_parser("fetch", help="download and verify (needs the network)")
    p.add_argument("kind", choices=["videos", "models"])
    p.add_argument("--dest", help="folder (default sample_videos/clips or models/exports)")
    p.set_defaults(handler=_cmd_assets_fetch)

    from citywatch.broker_cli import register as register_broker  # noqa: PLC0415
    from citywatch.demo_cli import register as register_demo  # noqa: PLC0415
    from edge.cli import register as register_edge  # noqa: PLC0415
    from server.cli import register as register_server  # noqa: PLC0415

    register_broker(sub)
    register_edge(sub)
    register_server(sub)
    register_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("interrupted")
        return 130


if __name__ == "__main__":  # python -m citywatch.cli
    sys.exit(main())
