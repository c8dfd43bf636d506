"""The fleet's place in the app's life: seed the registry from the site file on first start (after
that the registry is the site), run the MQTT bridge, and push a change to the edges at once."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from fastapi import FastAPI

from citywatch.site import SiteConfig
from citywatch.site_doc import to_yaml
from server.fleet import registry
from server.fleet.bridge import FleetBridge
from server.ingest.validate import Validator
from server.settings import Settings

log = logging.getLogger(__name__)


async def start(app: FastAPI, settings: Settings, *, bridge: bool) -> None:
    """Seed or load the registry into ``app.state.site``; start the bridge and push every config.

    The site file seeds the registry on the first start and whenever the file has changed since it
    last did (the file wins then, and changes made in the web app since are replaced: logged); an
    unchanged file leaves the registry, with the web app's changes, as it is.
    """
    site: SiteConfig = app.state.site
    seed = hashlib.sha256(to_yaml(site).encode()).hexdigest()
    async with app.state.pool.connection() as conn:
        try:
            stored = await registry.export_site(conn)
            previous = await registry.seed_checksum(conn)
        except registry.NotSeededError:
            stored, previous = None, None
        if stored is None or previous != seed:
            if stored is not None:
                log.warning("the site file changed since it seeded the fleet registry: re-importing it")
            await registry.import_site(conn, site, "site-file", seed)
            stored = site
            log.info("fleet registry seeded from the site file (%d cameras)", len(site.cameras))
    if stored.site.id != site.site.id:
        log.error(
            "the fleet registry holds site %r, not %r: using the site file", stored.site.id, site.site.id
        )
    else:
        _adopt(app, stored)
    app.state.fleet_bridge = None
    if bridge:
        b = FleetBridge(settings, site.site.id, site.mqtt_prefix)
        await asyncio.to_thread(b.start)
        app.state.fleet_bridge = b
        await push(app, app.state.site, None)


async def stop(app: FastAPI) -> None:
    b: FleetBridge | None = getattr(app.state, "fleet_bridge", None)
    if b is not None:
        await asyncio.to_thread(b.stop)


def _adopt(app: FastAPI, cfg: SiteConfig) -> None:
    """Serve ``cfg`` from now on: the API's site, its scoped copies, the ingest's known cameras."""
    app.state.site = cfg
    app.state.scoped_sites = {}
    service: Any = getattr(app.state, "ingest_service", None)
    if service is not None:
        s: Settings = app.state.settings
        service.validator = Validator(cfg, s.max_future_s, s.max_age_days)


async def push(app: FastAPI, cfg: SiteConfig, groups: set[str] | None) -> None:
    """Adopt a changed site and publish the configs of ``groups`` (all when None) to their edges."""
    _adopt(app, cfg)
    b: FleetBridge | None = getattr(app.state, "fleet_bridge", None)
    if b is None:
        return
    async with app.state.pool.connection() as conn:
        configs = await registry.desired_configs(conn, groups)
    failed = await asyncio.to_thread(b.publish, configs)
    async with app.state.pool.connection() as conn:
        await registry.mark_published(conn, [c for c in configs if c.group not in failed])
