"""The open-data background jobs of a server: daily dumps, and pushes to a context broker when one is
configured. Started in the app's lifespan, cancelled at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from citywatch.site import SiteConfig
from server.opendata import dumps


def start(pool: Any, site: SiteConfig) -> list[asyncio.Task[None]]:
    if not site.open_data.enabled:
        return []
    tasks = []
    if site.open_data.publish_counts:
        tasks.append(asyncio.create_task(dumps.run_forever(pool, site), name="opendata-dumps"))
    if site.open_data.broker is not None:
        from server.opendata import push  # noqa: PLC0415

        tasks.append(asyncio.create_task(push.run_forever(pool, site), name="opendata-push"))
    return tasks


async def stop(tasks: list[asyncio.Task[None]] | None) -> None:
    for task in tasks or []:
        task.cancel()
    for task in tasks or []:
        with contextlib.suppress(asyncio.CancelledError):
            await task
