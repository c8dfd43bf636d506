"""History API for planners: volumes, peak hours, period comparison, incidents, turning movements;
JSON, CSV, Parquet.

Every request's size is checked before any query runs (a 422 naming the limit): the range in days, the
camera x bucket cells, and raw scans (``source=raw``, admins only; turning movements). Callers without
the incidents permission (planners) get aggregates only (:mod:`server.history.privacy`): incident and
turning-movement ranges snap to whole buckets, and cells under ``k`` are suppressed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse

from citywatch.site import SiteConfig
from server.api.deps import PoolDep, SettingsDep, SiteDep
from server.api.errors import unprocessable
from server.api.export import EXPORT_RESPONSES, Format, table_response_async
from server.api.limits import check_cells, check_span
from server.auth.deps import PrincipalDep
from server.auth.roles import Perm
from server.db.backend_header import BackendHeaderRoute
from server.history import queries
from server.history.bins import Granularity, floor_bucket
from server.history.privacy import snap, suppress
from server.settings import Settings

router = APIRouter(prefix="/api/v1/history", tags=["history"], route_class=BackendHeaderRoute)

_STEP = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}

CameraQ = Annotated[list[str] | None, Query(description="Camera ids (repeatable); all cameras when absent.")]
StartQ = Annotated[datetime, Query(description="Range start (ISO 8601 with offset); floored to a bucket.")]
EndQ = Annotated[datetime, Query(description="Range end, exclusive; rounded up to a bucket edge.")]
FormatQ = Annotated[Format, Query(description="json, or csv / parquet for a download.")]


def _cameras(site: SiteConfig, wanted: list[str] | None) -> list[str]:
    known = [c.id for c in site.cameras]
    if not wanted:
        return known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown camera(s): {', '.join(unknown)}")
    return list(dict.fromkeys(wanted))


def _check_range(start: datetime, end: datetime, max_days: int | None = None, field: str = "end") -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise unprocessable("start and end need a UTC offset", "query", "start")
    if end <= start:
        raise unprocessable("end must be after start", "query", field)
    if max_days is not None:
        check_span(start, end, max_days, field)


def _hour_span(s: datetime, e: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[s, e)`` widened to whole local hours."""
    return floor_bucket(s, "1h", tz), floor_bucket(e - timedelta(microseconds=1), "1h", tz) + timedelta(
        hours=1
    )


def _aggregates_only(settings: Settings, principal: PrincipalDep) -> int | None:
    """``k`` for callers who may not see incidents one by one; None for those who may."""
    return None if principal.may(Perm.INCIDENTS) else settings.aggregate_k


@router.get(
    "/volume",
    responses=EXPORT_RESPONSES,
    summary="Volume by camera, line, direction and class in 15 min, hour or day bins",
)
async def volume(
    *,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    start: StartQ,
    end: EndQ,
    camera_id: CameraQ = None,
    bin: Annotated[Granularity, Query(description="15m, 1h (local hours) or 1d (local days).")] = "1h",
    group_by: Annotated[
        list[Literal["camera", "line_id", "direction", "cls"]] | None,
        Query(
            description="Dimensions to keep besides camera and bucket (repeatable); all three when absent; "
            "`camera` alone gives camera totals."
        ),
    ] = None,
    source: Annotated[
        Literal["rollup", "raw"],
        Query(description="rollup (fast) or raw rows (admins only; short ranges); the answers are equal."),
    ] = "rollup",
    format: FormatQ = "json",
) -> Response:
    """Every (camera, bucket) appears, with ``quality`` (ok, degraded, tampering, offline, no_data),
    ``coverage`` (share of the bucket with count bins), the ``health`` flags seen, and ``sample`` (true for
    the demo's made-up history, which never shares a bucket with live data)."""
    if source == "raw" and not principal.may(Perm.ADMIN):
        # A raw scan costs seconds per month of data: a diagnostic for admins, not a planner's query.
        raise HTTPException(status.HTTP_403_FORBIDDEN, "source=raw is for admins")
    _check_range(start, end, settings.history_max_days)
    tz = ZoneInfo(site.site.timezone)
    cams = _cameras(site, camera_id)
    if source == "raw":
        check_span(start, end, settings.history_max_raw_days, what="a raw scan's range")
    check_cells(start, end, _STEP[bin], len(cams), settings.history_max_rows)
    dims: tuple[queries.Dim, ...] = (
        tuple(d for d in group_by if d != "camera") if group_by else queries.ALL_DIMS
    )
    async with pool.connection() as conn:
        rows = await queries.volume(
            conn, cameras=cams, start=start, end=end, g=bin, tz=tz, dims=dims, source=source
        )
    columns = [
        *("camera_id", "bucket", "line_id", "direction", "cls", "count", "quality", "coverage", "health"),
        "sample",
    ]
    meta = {"site_id": site.site.id, "timezone": site.site.timezone, "bin": bin, "source": source}
    # VolumeRow has slots and flat fields: a dict per row without asdict's deep copy.
    names = [f.name for f in dataclasses.fields(queries.VolumeRow)]
    body = [{n: getattr(r, n) for n in names} for r in rows]
    return await table_response_async(body, columns, fmt=format, tz=tz, meta=meta, name=f"volume-{bin}")


@router.get(
    "/peak-hours",
    responses=EXPORT_RESPONSES,
    summary="Busiest hours: mean volume by local hour of day, and the top hours",
)
async def peak_hours(
    *,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    start: StartQ,
    end: EndQ,
    camera_id: CameraQ = None,
    top: Annotated[int, Query(ge=1, le=100)] = 5,
) -> dict[str, Any]:
    _check_range(start, end, settings.history_max_days)
    tz = ZoneInfo(site.site.timezone)
    cams = _cameras(site, camera_id)
    lo, hi = _hour_span(start, end, tz)
    check_cells(lo, hi, _STEP["1h"], len(cams), settings.history_max_rows)
    async with pool.connection() as conn:
        hours = await queries.hourly_totals(conn, cams, lo, hi)
    by_hour: dict[int, list[int]] = defaultdict(list)
    for bucket, count in hours.items():
        by_hour[bucket.astimezone(tz).hour].append(count)
    profile = [
        {"hour": h, "mean": round(sum(v) / len(v), 2), "total": sum(v), "hours_with_data": len(v)}
        for h, v in sorted(by_hour.items())
    ]
    peaks = sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "site_id": site.site.id,
        "timezone": site.site.timezone,
        "cameras": cams,
        "by_hour_of_day": profile,
        "peaks": [{"hour_start": b.astimezone(tz).isoformat(), "count": c} for b, c in peaks],
    }


@router.get(
    "/compare", responses=EXPORT_RESPONSES, summary="Compare the volume of two periods, by camera and class"
)
async def compare(
    *,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    a_start: datetime,
    a_end: datetime,
    b_start: datetime,
    b_end: datetime,
    camera_id: CameraQ = None,
) -> dict[str, Any]:
    """Periods are hour-aligned (local hours). ``change_pct`` is null where period A had no traffic."""
    _check_range(a_start, a_end, settings.history_max_days, "a_end")
    _check_range(b_start, b_end, settings.history_max_days, "b_end")
    tz = ZoneInfo(site.site.timezone)
    cams = _cameras(site, camera_id)
    period_a, period_b = _hour_span(a_start, a_end, tz), _hour_span(b_start, b_end, tz)
    for lo, hi in (period_a, period_b):
        check_cells(lo, hi, _STEP["1h"], len(cams), settings.history_max_rows)
    async with pool.connection() as conn:
        a = await queries.totals(conn, cams, *period_a)
        b = await queries.totals(conn, cams, *period_b)
    rows = []
    for key in sorted(a.keys() | b.keys()):
        va, vb = a.get(key, 0), b.get(key, 0)
        change = None if va == 0 else round(100.0 * (vb - va) / va, 2)
        rows.append({"camera_id": key[0], "cls": key[1], "a": va, "b": vb, "change_pct": change})
    ta, tb = sum(a.values()), sum(b.values())
    return {
        "site_id": site.site.id,
        "rows": rows,
        "total": {"a": ta, "b": tb, "change_pct": None if ta == 0 else round(100.0 * (tb - ta) / ta, 2)},
    }


@router.get(
    "/incidents", responses=EXPORT_RESPONSES, summary="Incident counts by type and place (camera, zone, line)"
)
async def incidents(
    *,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    start: StartQ,
    end: EndQ,
    camera_id: CameraQ = None,
    format: FormatQ = "json",
) -> Response:
    """Incidents started in the range. For callers without the incidents permission the range snaps to
    whole buckets (``start``/``end`` of the answer say which) and a cell under ``k`` incidents has
    ``count`` null and ``suppressed`` true."""
    _check_range(start, end, settings.history_max_days)
    tz = ZoneInfo(site.site.timezone)
    cams = _cameras(site, camera_id)
    k = _aggregates_only(settings, principal)
    if k is not None:
        start, end = snap(start, end, settings.aggregate_bucket, tz)
    async with pool.connection() as conn:
        rows = await queries.incident_counts(conn, cams, start, end)
    rows = suppress(rows, k or 1)
    where = {c.id: c for c in site.cameras}
    for r in rows:
        r["camera_name"] = where[r["camera_id"]].name
        r["latitude"] = where[r["camera_id"]].location.lat
        r["longitude"] = where[r["camera_id"]].location.lon
    columns = [
        "camera_id",
        "camera_name",
        "latitude",
        "longitude",
        "type",
        "severity",
        "zone_id",
        "line_id",
        "count",
        "suppressed",
    ]
    meta: dict[str, Any] = {
        "site_id": site.site.id,
        "start": start.astimezone(tz).isoformat(),
        "end": end.astimezone(tz).isoformat(),
    }
    if k is not None:
        meta["suppressed_below"] = k
    return await table_response_async(rows, columns, fmt=format, tz=tz, meta=meta, name="incidents")


@router.get(
    "/turning-movements",
    responses=EXPORT_RESPONSES,
    summary="Turning movements: per junction, vehicles from each entry line to each exit line, by class",
)
async def turning_movements(
    *,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    start: StartQ,
    end: EndQ,
    camera_id: CameraQ = None,
    format: FormatQ = "json",
) -> Response:
    """Sums over the count bins that start in ``[start, end)``. JSON: per junction of the chosen cameras
    (every configured junction, with an empty matrix when nothing was counted) a ``matrix``
    ``{from_line: {to_line: {cls: count}}}`` and its ``total``; CSV/Parquet: one row per cell.

    For callers without the incidents permission the range snaps to whole buckets, and a cell under
    ``k`` vehicles is null in the matrix (``suppressed`` counts them; ``total`` sums the cells shown)."""
    _check_range(start, end, settings.history_max_days)
    # Movements have no rollup: the range is a scan of raw bins.
    check_span(start, end, settings.history_max_raw_days)
    tz = ZoneInfo(site.site.timezone)
    cams = _cameras(site, camera_id)
    k = _aggregates_only(settings, principal)
    if k is not None:
        start, end = snap(start, end, settings.aggregate_bucket, tz)
    async with pool.connection() as conn:
        rows = await queries.movement_counts(conn, cams, start, end)
    for r in rows:
        r["count"] = int(r["count"])
    rows = suppress(rows, k or 1)
    meta: dict[str, Any] = {"site_id": site.site.id, "timezone": site.site.timezone}
    if k is not None:
        meta["suppressed_below"] = k
    if format != "json":
        columns = ["camera_id", "junction_id", "from_line", "to_line", "cls", "count", "suppressed"]
        return await table_response_async(
            rows, columns, fmt=format, tz=tz, meta=meta, name="turning-movements"
        )
    junctions: dict[tuple[str, str], dict[str, Any]] = {}
    for cam_id in cams:
        for j in site.camera(cam_id).junctions:
            junctions[(cam_id, j.id)] = {
                "camera_id": cam_id,
                "junction_id": j.id,
                "name": j.name,
                "entries": list(j.entries),
                "exits": list(j.exits),
                "matrix": {},
                "total": 0,
                "suppressed": 0,
            }
    for r in rows:
        # A junction since removed from the config still has its stored movements.
        out = junctions.setdefault(
            (r["camera_id"], r["junction_id"]),
            {
                "camera_id": r["camera_id"],
                "junction_id": r["junction_id"],
                "name": "",
                "entries": [],
                "exits": [],
                "matrix": {},
                "total": 0,
                "suppressed": 0,
            },
        )
        out["matrix"].setdefault(r["from_line"], {}).setdefault(r["to_line"], {})[r["cls"]] = r["count"]
        if r["suppressed"]:
            out["suppressed"] += 1
        else:
            out["total"] += r["count"]
    return JSONResponse(
        {
            **meta,
            "start": start.astimezone(tz).isoformat(),
            "end": end.astimezone(tz).isoformat(),
            "junctions": [junctions[k] for k in sorted(junctions)],
        }
    )
