"""``create_app``: the FastAPI application with its pool, live hub and ingest service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig
from server.api import history, live, ops
from server.ingest.service import IngestService
from server.live import LiveHub
from server.metrics import Metrics
from server.settings import Settings
from server.web import routes as web

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, site: SiteConfig, *, ingest: bool = True, metrics: Metrics | None = None
) -> FastAPI:
    """Build the app; the database must already be migrated (``server.main.prepare``)."""
    dsn = settings.database_url.get_secret_value()
    shared_metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            open=False,
            min_size=1,
            max_size=10,
            # UTC sessions: psycopg then returns datetimes with timezone.utc (cheap to hash and compare).
            kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
        )
        await pool.open(wait=True, timeout=settings.db_wait_s or 30.0)
        hub = LiveHub(dsn)
        hub.start()
        if not await hub.wait_ready(10.0):
            log.warning("live updates not ready yet (LISTEN connection); continuing")
        app.state.pool, app.state.hub = pool, hub
        service = IngestService(settings, site, shared_metrics) if ingest else None
        if service is not None:
            await asyncio.to_thread(service.start)
        try:
            yield
        finally:
            if service is not None:
                await asyncio.to_thread(service.stop)
            await hub.stop()
            await pool.close()

    app = FastAPI(
        title="citywatch server",
        version="0.1.0",
        description="Traffic history for planners, live state for the map, ingest metrics.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.site, app.state.metrics = settings, site, shared_metrics
    app.include_router(ops.router)
    app.include_router(history.router)
    app.include_router(live.router)
    app.include_router(live.snapshots)
    web.mount(app)
    return app
