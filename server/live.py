"""Fan-out of database change notifications (``LISTEN citywatch_live``) to WebSocket clients.

The writer NOTIFYs in its batch transaction, so every server instance (shared subscriptions split the
messages between them) hears every change once it is committed.

``LiveRegistry`` fans each change out: the sockets that see the same cameras share one ``ScopeFeed``,
which computes a change's message once (its database queries run once per scope, not per socket) and
puts it on every member socket's queue. ``{"auth_change": username}`` notifications (an admin changed
a user) are passed on as ``{"recheck": username}`` so that user's open sockets check again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import sql

from citywatch.site import SiteConfig
from server.auth.deps import Principal
from server.ingest.writer import LIVE_CHANNEL

#: Computes the messages one change means for the sockets of one scope (None: nothing to send).
Compute = Callable[[SiteConfig, frozenset[str], dict[str, Any]], Awaitable[list[dict[str, Any]]]]

log = logging.getLogger(__name__)


class LiveHub:
    """One LISTEN connection; each subscriber gets a bounded queue (oldest change dropped when full)."""

    def __init__(self, dsn: str, queue_size: int = 100) -> None:
        self._dsn = dsn
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.dropped = 0

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self._queue_size)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(q)

    def publish(self, change: dict[str, Any]) -> None:
        for q in list(self._subscribers):
            if q.full():
                self.dropped += 1
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(change)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="citywatch-live-listen")

    async def wait_ready(self, within_s: float) -> bool:
        """True once LISTEN is in place (changes committed after this are seen)."""
        try:
            await asyncio.wait_for(self._ready.wait(), within_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(LIVE_CHANNEL)))
                    delay = 0.5
                    self._ready.set()
                    async for note in conn.notifies():
                        try:
                            self.publish(json.loads(note.payload))
                        except json.JSONDecodeError:
                            log.warning("live: ignoring a malformed notification")
            except psycopg.Error as exc:
                log.warning(
                    "live: LISTEN connection lost (%s); retrying in %.1f s", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def scoped_site(full: SiteConfig, principal: Principal) -> SiteConfig:
    """The site as ``principal`` sees it: only cameras of their groups."""
    cams = [c for c in full.cameras if principal.sees_group(c.group)]
    return full if len(cams) == len(full.cameras) else full.model_copy(update={"cameras": cams})


def _put(q: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> bool:
    """Put, dropping the oldest item when full; True when something was dropped."""
    dropped = False
    if q.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            q.get_nowait()
            dropped = True
    q.put_nowait(item)
    return dropped


class ScopeFeed:
    """The sockets of one camera scope: one hub subscription, one computation per change."""

    def __init__(self, hub: LiveHub, site: SiteConfig, compute: Compute, queue_size: int = 100) -> None:
        self.site = site
        self.visible = frozenset(c.id for c in site.cameras)
        self._hub, self._compute, self._queue_size = hub, compute, queue_size
        self.sockets: set[asyncio.Queue[dict[str, Any]]] = set()
        self.computed = 0  # changes computed (once per scope, whatever the number of sockets)
        self._task: asyncio.Task[None] | None = None

    def add(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self._queue_size)
        self.sockets.add(q)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="citywatch-live-scope")
        return q

    def remove(self, q: asyncio.Queue[dict[str, Any]]) -> bool:
        """Drop a socket; True when the feed is now empty (and stopped)."""
        self.sockets.discard(q)
        if not self.sockets and self._task is not None:
            self._task.cancel()
            self._task = None
        return not self.sockets

    async def _run(self) -> None:
        changes = self._hub.subscribe()
        try:
            while True:
                change = await changes.get()
                if "auth_change" in change:
                    items = [{"recheck": str(change["auth_change"])}]
                else:
                    try:
                        items = await self._compute(self.site, self.visible, change)
                    except psycopg.Error as exc:
                        log.warning("live: a change could not be computed (%s)", type(exc).__name__)
                        continue
                    self.computed += 1
                for item in items:
                    for q in list(self.sockets):
                        if _put(q, item):
                            self._hub.dropped += 1
        finally:
            self._hub.unsubscribe(changes)


class LiveRegistry:
    """Every open live socket: feeds by scope, and how many sockets each user holds."""

    def __init__(self, hub: LiveHub, compute: Compute) -> None:
        self._hub, self._compute = hub, compute
        self.feeds: dict[frozenset[str], ScopeFeed] = {}
        self.per_user: Counter[str] = Counter()

    def admit(self, username: str, limit: int) -> bool:
        if self.per_user[username] >= limit:
            log.warning("live: %r already holds %d live sockets; refusing another", username, limit)
            return False
        self.per_user[username] += 1
        return True

    def release(self, username: str) -> None:
        self.per_user[username] -= 1
        if self.per_user[username] <= 0:
            del self.per_user[username]

    def join(self, site: SiteConfig) -> tuple[ScopeFeed, asyncio.Queue[dict[str, Any]]]:
        key = frozenset(c.id for c in site.cameras)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = ScopeFeed(self._hub, site, self._compute)
        return feed, feed.add()

    def leave(self, feed: ScopeFeed, q: asyncio.Queue[dict[str, Any]]) -> None:
        if feed.remove(q) and self.feeds.get(feed.visible) is feed:
            del self.feeds[feed.visible]
