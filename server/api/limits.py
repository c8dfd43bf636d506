"""Limits on what one request may cost: the body size (an ASGI middleware that answers 413 before
reading more than ``max_bytes``) and the size of history queries (a 422 before any query runs).

No route takes uploads; the largest legitimate body is an admin's set of alert rules. A declared
``Content-Length`` over the limit is refused at once; a chunked body is read up to the limit (bodies
are small here, so holding one is cheap) and refused as soon as it passes it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.errors import unprocessable

DEFAULT_MAX_BYTES = 1 << 20


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        # Read the whole body first (at most max_bytes), then hand it to the app in one piece.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)  # a disconnect: let it see it
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _refuse(self, send: Send) -> None:
        body = b'{"detail":"request body too large"}'
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


#: History lives between these: outside them bucket arithmetic in a local zone can overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def check_span(
    start: datetime, end: datetime, max_days: int, field: str = "end", what: str = "range"
) -> None:
    """422 when ``[start, end)`` is longer than ``max_days`` or outside 1970-2200."""
    if start < EARLIEST or end > LATEST:
        raise unprocessable("dates must lie between 1970 and 2200", "query", field)
    if end - start > timedelta(days=max_days):
        raise unprocessable(f"{what} longer than {max_days} days: ask for a shorter one", "query", field)


def check_cells(start: datetime, end: datetime, step: timedelta, cameras: int, max_rows: int) -> None:
    """422 when the range in ``step`` buckets times the cameras passes ``max_rows`` (the rows the answer
    would have at least)."""
    cells = math.ceil((end - start) / step) * max(cameras, 1)
    if cells > max_rows:
        raise unprocessable(
            f"{cells} camera x bucket cells asked for, at most {max_rows}: use a larger bin, a shorter "
            "range or fewer cameras",
            "query",
            "bin",
        )
