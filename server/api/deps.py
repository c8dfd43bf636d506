"""Annotated dependencies: the pool, the site, the settings, the metrics, the live hub."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig
from server.auth.deps import PrincipalDep
from server.live import LiveHub
from server.metrics import Metrics
from server.settings import Settings


def _pool(request: Request) -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] = request.app.state.pool
    return pool


async def _site(request: Request, principal: PrincipalDep) -> SiteConfig:
    """The site as the caller may see it: only the cameras of its camera groups (all when unscoped)."""
    site: SiteConfig = request.app.state.site
    if principal.camera_groups is None:
        return site
    cache: dict[tuple[str, ...], SiteConfig] = request.app.state.scoped_sites
    key = principal.camera_groups
    if key not in cache:
        cams = [c for c in site.cameras if c.group in key]
        # Not re-validated: a scope may hold no camera at all (then every list is empty).
        cache[key] = site.model_copy(update={"cameras": cams})
    return cache[key]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _hub(request: Request) -> LiveHub:
    hub: LiveHub = request.app.state.hub
    return hub


PoolDep = Annotated[AsyncConnectionPool[Any], Depends(_pool)]
SiteDep = Annotated[SiteConfig, Depends(_site)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
SettingsDep = Annotated[Settings, Depends(_settings)]
HubDep = Annotated[LiveHub, Depends(_hub)]
