"""Entry points behind ``citywatch server run|migrate``: settings from the environment, built here."""

from __future__ import annotations

import logging

import psycopg

from citywatch.site import ConfigError, SiteConfig, load_site
from server.db.migrate import (
    MigrateResult,
    may_migrate,
    migrate,
    pending,
    storage_backend,
    wait_for_database,
)
from server.db.roles import privilege_problems, provision_app_role
from server.db.timescale import apply_policies
from server.errors import MigrationError, ServerError
from server.settings import Settings

log = logging.getLogger(__name__)


def prepare(settings: Settings, site: SiteConfig) -> MigrateResult:
    """Wait for the database, migrate it as the owner and (on TimescaleDB) apply the policies; make
    the server's own role a restricted application role (when the owner's DSN is a separate one)."""
    dsn = settings.migrate_dsn
    wait_for_database(dsn, settings.db_wait_s)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if settings.migrate_database_url is None and not may_migrate(conn):
            result = _check_current(conn)
        else:
            result = migrate(conn, site.site.timezone, settings.timescale)
            if result.backend == "timescale":
                apply_policies(conn, settings)
            if settings.migrate_database_url is not None:
                provision_app_role(conn, settings.database_url.get_secret_value())
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        problems = privilege_problems(conn)
    if problems:
        log.warning(
            "the server's database role %s: the newest audit rows can be deleted; set "
            "CITYWATCH_MIGRATE_DATABASE_URL to the owner and DATABASE_URL to a role of its own",
            ", ".join(problems),
        )
    log.info(
        "database ready (%s): %d migration(s) applied, %d skipped",
        result.backend,
        len(result.applied),
        len(result.skipped),
    )
    return result


def _check_current(conn: psycopg.Connection[tuple[object, ...]]) -> MigrateResult:
    """A restricted role and no owner's DSN: `citywatch server migrate` runs as a separate job with
    the owner's; start only on the schema this code expects."""
    left = pending(conn)
    if left:
        raise MigrationError(
            f"pending migrations {', '.join(left)}: run `citywatch server migrate` with the owner's DSN "
            "(CITYWATCH_MIGRATE_DATABASE_URL)"
        )
    log.info("database schema is current; not migrating (the server's role may not)")
    return MigrateResult(storage_backend(conn), [], [])


def migrate_only() -> int:
    try:
        settings = Settings.from_env()
        prepare(settings, load_site(settings.site_path))
    except (ServerError, ConfigError) as exc:
        log.error("migrate failed: %s", exc)
        return 1
    return 0


def run(*, ingest: bool = True) -> int:
    import uvicorn  # noqa: PLC0415

    from server.app import create_app  # noqa: PLC0415

    try:
        settings = Settings.from_env()
        site = load_site(settings.site_path)
        prepare(settings, site)
    except (ServerError, ConfigError) as exc:
        log.error("server start failed: %s", exc)
        return 1
    app = create_app(settings, site, ingest=ingest)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None)
    return 0
