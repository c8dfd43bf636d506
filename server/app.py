"""``create_app``: the FastAPI application with its pool, live hub and ingest service."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig
from server.alerting.engine import AlertEngine
from server.api import auth, clips, history, incidents, live, ops
from server.api.limits import DEFAULT_MAX_BYTES, BodySizeLimit
from server.auth import audit
from server.auth.deps import require
from server.auth.ratelimit import LoginLimiter, UserRateLimiter
from server.auth.roles import Perm
from server.fleet import api as fleet_api
from server.fleet import lifecycle as fleet
from server.ingest.service import IngestService
from server.live import LiveHub, LiveRegistry
from server.metrics import Metrics
from server.opendata import api as opendata
from server.opendata import jobs as opendata_jobs
from server.settings import Settings
from server.web import headers
from server.web import routes as web
from server.web.headers import SecurityHeaders

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    site: SiteConfig,
    *,
    ingest: bool = True,
    metrics: Metrics | None = None,
    alerting: bool | None = None,
) -> FastAPI:
    """Build the app; the database must already be migrated (``server.main.prepare``).

    ``alerting`` runs the alert engine (default: ``settings.alerting`` when ingest runs)."""
    dsn = settings.database_url.get_secret_value()
    run_alerts = (settings.alerting and ingest) if alerting is None else alerting
    if settings.jwt_secret is not None:
        jwt_secret = settings.jwt_secret.get_secret_value()
    else:
        jwt_secret = secrets.token_urlsafe(48)
        log.warning("CITYWATCH_JWT_SECRET is unset: using a random key; tokens end when this process does")
    shared_metrics = metrics or Metrics()
    audit_key = settings.audit_key.get_secret_value().encode() if settings.audit_key is not None else None
    audit.configure(audit_key, settings.audit_anchor_path)
    if audit_key is None:
        log.warning("CITYWATCH_AUDIT_KEY is unset: the audit chain is unkeyed (re-chaining goes unnoticed)")

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
        app.state.live = LiveRegistry(hub, functools.partial(live.compute_change, pool))
        await fleet.start(app, settings, bridge=ingest)  # app.state.site: the fleet registry's
        service = IngestService(settings, app.state.site, shared_metrics) if ingest else None
        app.state.ingest_service = service
        if service is not None:
            await asyncio.to_thread(service.start)
        engine = AlertEngine(settings, site, metrics=shared_metrics) if run_alerts else None
        app.state.alerts = engine
        if engine is not None:
            await asyncio.to_thread(engine.start)
        anchor = asyncio.create_task(
            audit.anchor_loop(pool, settings.audit_anchor_s, shared_metrics.set_audit_head),
            name="audit-anchor",
        )
        open_jobs = opendata_jobs.start(pool, site) if ingest else None
        try:
            yield
        finally:
            await opendata_jobs.stop(open_jobs)
            anchor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await anchor
            if engine is not None:
                await asyncio.to_thread(engine.stop)
            if service is not None:
                await asyncio.to_thread(service.stop)
            await fleet.stop(app)
            await hub.stop()
            await pool.close()

    app = FastAPI(
        title="citywatch server",
        version="0.1.0",
        description="Traffic history for planners, live state for the map, ingest metrics.",
        lifespan=lifespan,
        docs_url=None,  # served from local files by server.web.headers (no CDN)
        redoc_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=DEFAULT_MAX_BYTES)
    app.add_middleware(SecurityHeaders)  # outermost: on every response, errors included
    app.state.settings, app.state.site, app.state.metrics = settings, site, shared_metrics
    app.state.jwt_secret, app.state.login_limiter = jwt_secret, LoginLimiter()
    app.state.api_limiter = UserRateLimiter(settings.api_rate_per_s, settings.api_burst)
    app.state.scoped_sites, app.state.alerts = {}, None
    # Only /healthz and the login are open; the page and its static files hold no data.
    app.include_router(ops.router)
    app.include_router(ops.metrics_router, dependencies=[require(Perm.METRICS)])
    app.include_router(auth.router)
    app.include_router(history.router, dependencies=[require(Perm.HISTORY)])
    app.include_router(live.router, dependencies=[require(Perm.LIVE)])
    app.include_router(live.ws_router)
    app.include_router(incidents.router)
    opendata.mount(app, site)  # /open/v1: public, no login
    app.include_router(clips.router)
    app.include_router(fleet_api.router)
    web.mount(app)
    app.include_router(headers.docs)
    return app
