"""Operations: liveness (open, for orchestrators) and Prometheus metrics (needs the metrics permission:
an API key with the operator role in the scrape config)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import PlainTextResponse

from server.api.deps import MetricsDep, PoolDep

router = APIRouter(tags=["ops"])
metrics_router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness and database reachability")
async def healthz(pool: PoolDep, response: Response) -> dict[str, Any]:
    try:
        async with pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure means "not healthy", reported, not raised
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unhealthy", "database": type(exc).__name__}
    return {"status": "ok", "database": "ok"}


@metrics_router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format")
async def metrics(m: MetricsDep) -> PlainTextResponse:
    return PlainTextResponse(m.render(), media_type="text/plain; version=0.0.4")
