"""The public open-data API under ``/open/v1`` (no login): counts as NGSI-LD ``TrafficFlowObserved``
(normalized or key-values), CSV or Parquet; camera places as GeoJSON; open incidents as ``Alert`` when
the site publishes them. Every answer is delayed and has its small cells suppressed (see
``cells.py``), is cached, rate limited per client and carries ETag/Last-Modified."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from psycopg.rows import dict_row

from citywatch.site import SiteConfig
from server.api.errors import unprocessable
from server.opendata import ngsi, tables
from server.opendata.cells import CellPage, PublicBin, public_cells, published_until
from server.opendata.http import (
    GEOJSON,
    LD_JSON,
    PARQUET,
    RateLimiter,
    ResponseCache,
    Usage,
    documented,
    respond,
)

CSV_MEDIA = "text/csv; charset=utf-8"
MAX_DAYS: dict[str, int] = {"1h": 31, "1d": 366}


@dataclass
class OpenDataState:
    cache: ResponseCache
    limiter: RateLimiter
    usage: Usage = field(default_factory=Usage)


def _state(request: Request) -> OpenDataState:
    st: OpenDataState = request.app.state.opendata
    return st


def _site(request: Request) -> SiteConfig:
    site: SiteConfig = request.app.state.site
    return site


async def _guard(request: Request) -> None:
    """Open data switched on, and the client under its rate limit (429 with Retry-After otherwise)."""
    site = _site(request)
    if not site.open_data.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "open data is not published on this server")
    client = request.client.host if request.client else "unknown"
    wait = _state(request).limiter.retry_after(client)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit: {site.open_data.rate_per_min} requests per minute",
            headers={"Retry-After": str(int(wait) + 1)},
        )


router = APIRouter(prefix="/open/v1", tags=["open data"], dependencies=[Depends(_guard)])
SiteDep = Annotated[SiteConfig, Depends(_site)]
StateDep = Annotated[OpenDataState, Depends(_state)]


def _cache_key(request: Request, extra: str) -> str:
    return f"{request.url.path}?{sorted(request.query_params.multi_items())}#{extra}"


def local_day_range(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start.astimezone(UTC), (start + timedelta(days=1, hours=12)).replace(hour=0).astimezone(UTC)


def _range(
    site: SiteConfig, g: str, day: date | None, start: datetime | None, end: datetime | None, days: int = 1
) -> tuple[datetime, datetime]:
    tz = ZoneInfo(site.site.timezone)
    if day is not None:
        if start is not None or end is not None:
            raise unprocessable("give either date or start/end", "query", "date")
        if days > MAX_DAYS[g]:
            raise unprocessable(f"at most {MAX_DAYS[g]} days per request for bin={g}", "query", "days")
        return local_day_range(day, tz)[0], local_day_range(day + timedelta(days=days - 1), tz)[1]
    if start is None or end is None:
        today = datetime.now(tz).date()
        return local_day_range(today, tz) if g == "1h" else local_day_range(today - timedelta(days=1), tz)
    if start.tzinfo is None or end.tzinfo is None:
        raise unprocessable("start and end need a UTC offset", "query", "start")
    if end <= start:
        raise unprocessable("end must be after start", "query", "end")
    if end - start > timedelta(days=MAX_DAYS[g]):
        raise unprocessable(f"at most {MAX_DAYS[g]} days per request for bin={g}", "query", "end")
    return start, end


def _cameras(site: SiteConfig, wanted: list[str] | None) -> list[str]:
    known = [c.id for c in site.cameras]
    if not wanted:
        return known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown camera(s): {', '.join(unknown)}")
    return list(dict.fromkeys(wanted))


async def fetch_cells(
    request: Request, site: SiteConfig, cams: list[str], start: datetime, end: datetime, g: PublicBin
) -> CellPage:
    od = site.open_data
    tz = ZoneInfo(site.site.timezone)
    until = published_until(datetime.now(UTC), g, timedelta(seconds=od.delay_s), tz)
    async with request.app.state.pool.connection() as conn:
        return await public_cells(conn, cameras=cams, start=start, end=end, g=g, tz=tz, k=od.k, until=until)


@router.get(
    "/flow",
    response_class=Response,
    responses=documented(LD_JSON, CSV_MEDIA, PARQUET),
    summary="Traffic counts by camera, line, direction and class (hourly or daily)",
)
async def flow(
    request: Request,
    site: SiteDep,
    st: StateDep,
    bin: Annotated[Literal["1h", "1d"], Query(description="1h (local hours) or 1d (local days).")] = "1h",
    date_: Annotated[date | None, Query(alias="date", description="A local day (YYYY-MM-DD).")] = None,
    days: Annotated[int, Query(ge=1, le=366, description="With date: this many local days from it.")] = 1,
    start: Annotated[datetime | None, Query(description="Range start (ISO 8601 with offset).")] = None,
    end: Annotated[datetime | None, Query(description="Range end, exclusive.")] = None,
    camera_id: Annotated[
        list[str] | None, Query(description="Camera ids (repeatable); all when absent.")
    ] = None,
    format: Annotated[Literal["ngsi-ld", "csv", "parquet"], Query()] = "ngsi-ld",
    options: Annotated[
        Literal["normalized", "keyValues"], Query(description="NGSI-LD representation.")
    ] = "normalized",
    limit: Annotated[int, Query(ge=1, le=5000, description="NGSI-LD entities per page.")] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Counts of buckets that ended at least the site's delay ago; cells counting 1..k-1 are left out
    (``X-Suppressed-Cells`` says how many). Times in NGSI-LD are UTC, in CSV/Parquet local/UTC."""
    if not site.open_data.publish_counts:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "counts are not published on this server")
    st.usage.hit(f"flow-{bin}-{format}")
    cams = _cameras(site, camera_id)
    lo, hi = _range(site, bin, date_, start, end, days)
    tz = ZoneInfo(site.site.timezone)
    until = published_until(datetime.now(UTC), bin, timedelta(seconds=site.open_data.delay_s), tz)
    key = _cache_key(request, until.isoformat())
    hit = st.cache.get(key)
    if hit is None:
        page = await fetch_cells(request, site, cams, lo, hi, bin)
        headers: list[tuple[str, str]] = [
            ("X-Suppressed-Cells", str(page.suppressed)),
            ("X-Published-Until", until.isoformat()),
        ]
        if format == "csv":
            body, media = tables.to_csv(site.site.id, page.cells, bin, tz), CSV_MEDIA
            headers.append(("Content-Disposition", f'attachment; filename="flow-{bin}.csv"'))
        elif format == "parquet":
            body, media = tables.to_parquet(site.site.id, page.cells, bin), PARQUET
            headers.append(("Content-Disposition", f'attachment; filename="flow-{bin}.parquet"'))
        else:
            vehicles = [c for c in page.cells if ngsi.is_vehicle(c)]
            total = len(vehicles)
            chunk = vehicles[offset : offset + limit]
            entities = [ngsi.flow_entity(site, c, bin, options) for c in chunk]
            body, media = json.dumps(entities, ensure_ascii=False).encode("utf-8"), LD_JSON
            headers.append(("NGSILD-Results-Count", str(total)))
            if offset + limit < total:
                q = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
                q.append(("offset", str(offset + limit)))
                headers.append(("Link", f'<{request.url.path}?{urlencode(q)}>; rel="next"'))
        hit = st.cache.put(key, body, media, tuple(headers))
    return respond(request, hit)


@router.get(
    "/cameras.geojson",
    response_class=Response,
    responses=documented(GEOJSON),
    summary="Camera places and their counting lines (GeoJSON)",
)
async def cameras(request: Request, site: SiteDep, st: StateDep) -> Response:
    st.usage.hit("cameras")
    hit = st.cache.get("cameras") or st.cache.put(
        "cameras",
        json.dumps(tables.cameras_geojson(site), ensure_ascii=False).encode(),
        GEOJSON,
    )
    return respond(request, hit)


_OPEN_INCIDENTS = """
SELECT incident_id, camera_id, type, severity, started_at FROM incidents
WHERE state = 'open' AND started_at <= %(until)s AND camera_id = ANY(%(cams)s) ORDER BY started_at
"""


async def open_incidents(pool: Any, cams: list[str], until: datetime) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_OPEN_INCIDENTS, {"until": until, "cams": cams})
        rows: list[dict[str, Any]] = await cur.fetchall()
        return rows


@router.get(
    "/alerts",
    response_class=Response,
    responses=documented(LD_JSON),
    summary="Open traffic incidents as NGSI-LD Alert (when the site publishes them)",
)
async def alerts(
    request: Request,
    site: SiteDep,
    st: StateDep,
    options: Annotated[Literal["normalized", "keyValues"], Query()] = "normalized",
) -> Response:
    if not site.open_data.publish_incidents:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incidents are not published on this server")
    st.usage.hit("alerts")
    key = _cache_key(request, "")
    hit = st.cache.get(key)
    if hit is None:
        until = datetime.now(UTC) - timedelta(seconds=site.open_data.delay_s)
        rows = await open_incidents(request.app.state.pool, [c.id for c in site.cameras], until)
        entities = [e for r in rows if (e := ngsi.alert_entity(site, r, options)) is not None]
        hit = st.cache.put(key, json.dumps(entities, ensure_ascii=False).encode(), LD_JSON)
    return respond(request, hit)


@router.get("/about", summary="The site, its publication rules and licence (for the public page)")
async def about(request: Request, site: SiteDep) -> dict[str, Any]:
    from server.web.routes import DEFAULT_TILES  # noqa: PLC0415

    od = site.open_data
    tz = ZoneInfo(site.site.timezone)
    return {
        "site_id": site.site.id,
        "name": site.site.name,
        "timezone": site.site.timezone,
        "today": datetime.now(tz).date().isoformat(),
        "center": {"lat": site.site.center.lat, "lon": site.site.center.lon},
        "zoom": site.site.zoom,
        "tile_url": os.environ.get("CITYWATCH_TILE_URL", DEFAULT_TILES),
        "delay_s": od.delay_s,
        "k": od.k,
        "licence": od.licence,
        "licence_url": od.licence_url,
        "publisher": od.publisher.model_dump(),
        "publish_counts": od.publish_counts,
        "publish_incidents": od.publish_incidents,
    }


@router.get("/usage", summary="Public requests per dataset and day (this server process)")
async def usage(st: StateDep) -> list[dict[str, object]]:
    return st.usage.snapshot()


def mount(app: FastAPI, site: SiteConfig) -> None:
    """Add the public routes (and the catalogue and dumps) to ``app``."""
    from server.opendata import catalog, page  # noqa: PLC0415

    od = site.open_data
    app.state.opendata = OpenDataState(ResponseCache(od.cache_s), RateLimiter(od.rate_per_min))
    app.include_router(router)
    app.include_router(catalog.router)
    app.include_router(page.router)
