"""Fan-out of database change notifications (``LISTEN citywatch_live``) to WebSocket clients.

The writer NOTIFYs in its batch transaction, so every server instance (shared subscriptions split the
messages between them) hears every change once it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import psycopg
from psycopg import sql

from server.ingest.writer import LIVE_CHANNEL

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
