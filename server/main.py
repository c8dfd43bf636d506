"""Entry points behind ``citywatch server run|migrate``: settings from the environment, built here."""

from __future__ import annotations

import logging

import psycopg

from citywatch.site import ConfigError, SiteConfig, load_site
from server.db.migrate import MigrateResult, migrate, wait_for_database
from server.db.timescale import apply_policies
from server.errors import ServerError
from server.settings import Settings

log = logging.getLogger(__name__)


def prepare(settings: Settings, site: SiteConfig) -> MigrateResult:
    """Wait for the database, migrate it and (on TimescaleDB) apply the policies."""
    dsn = settings.database_url.get_secret_value()
    wait_for_database(dsn, settings.db_wait_s)
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = migrate(conn, site.site.timezone, settings.timescale)
        if result.backend == "timescale":
            apply_policies(conn, settings)
    log.info(
        "database ready (%s): %d migration(s) applied, %d skipped",
        result.backend,
        len(result.applied),
        len(result.skipped),
    )
    return result


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
