"""The ``X-Citywatch-Backend`` response header: which storage backend (plain or timescale) answered.

A route class, so a router opts in with one argument (``APIRouter(route_class=BackendHeaderRoute)``);
the backend is read once per app from ``citywatch_meta`` (recorded by :func:`server.db.migrate.migrate`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

HEADER = "X-Citywatch-Backend"


async def storage_backend_of(app: FastAPI) -> str:
    cached: str | None = getattr(app.state, "storage_backend", None)
    if cached is None:
        async with app.state.pool.connection() as conn:
            cur = await conn.execute("SELECT value FROM citywatch_meta WHERE key = 'backend'")
            row = await cur.fetchone()
        cached = str(row[0]) if row else "unknown"
        app.state.storage_backend = cached
    return cached


class BackendHeaderRoute(APIRoute):
    """Adds :data:`HEADER` to every response of the route (errors raised as HTTPException excepted)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response = await handler(request)
            response.headers[HEADER] = await storage_backend_of(request.app)
            return response

        return route
