"""The police workflow: the incident queue, an incident with its evidence, alerts and audit trail,
the state changes (acknowledge, assign, resolve, false alarm), SLA reports, and the alert rules.

State machine (``incidents.workflow_state``)::

    new -> acknowledged -> assigned -> resolved
      \\________________\\__________\\-> false_alarm        (assign also from new; re-assign allowed)

Every change and every look at evidence (snapshot, track details) is written to the audit log in the
same transaction. Callers see only incidents of their camera groups (others are 404).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, LiteralString
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from citywatch.alerting import LIVE_CHANNEL as LIVE_ALERT_CHANNEL
from citywatch.alerting import AlertingSection, AlertRule, SlaTargets
from citywatch.site import SiteConfig
from server.api.deps import PoolDep, SettingsDep, SiteDep
from server.api.encoding import site_json, site_row
from server.api.errors import from_errors, unprocessable
from server.api.limits import check_span
from server.auth import audit
from server.auth.deps import Principal, require
from server.auth.roles import Perm
from server.history.privacy import snap, suppress
from server.ingest.writer import LIVE_CHANNEL

router = APIRouter(prefix="/api/v1", tags=["incidents"])

WorkflowState = Literal["new", "acknowledged", "assigned", "resolved", "false_alarm"]
FINAL = {"resolved", "false_alarm"}

_LIST: LiteralString = (
    "SELECT "
    "incident_id, camera_id, type, severity, rule_id, state, workflow_state, started_at, ended_at, "
    "received_at, summary, zone_id, line_id, snapshot_id IS NOT NULL AS has_snapshot, latitude, longitude, "
    "acknowledged_at, acknowledged_by, assigned_to, assigned_at, assigned_by, resolved_at, resolved_by, "
    "resolution_note "
    "FROM incidents WHERE camera_id = ANY(%(cams)s) "
    "AND (%(states)s::text[] IS NULL OR workflow_state = ANY(%(states)s)) "
    "AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s)) "
    "AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s) "
    "AND (%(until)s::timestamptz IS NULL OR started_at < %(until)s) "
    "ORDER BY started_at DESC LIMIT %(limit)s"
)
_ONE: LiteralString = (
    "SELECT "
    "incident_id, camera_id, type, severity, rule_id, state, workflow_state, started_at, ended_at, "
    "received_at, summary, zone_id, line_id, snapshot_id IS NOT NULL AS has_snapshot, latitude, longitude, "
    "acknowledged_at, acknowledged_by, assigned_to, assigned_at, assigned_by, resolved_at, resolved_by, "
    "resolution_note, "
    "classes, track_ids FROM incidents WHERE incident_id = %s"
)
_ONE_FOR_UPDATE: LiteralString = _ONE + " FOR UPDATE"


_LIST_RE = r"^[A-Za-z0-9_,-]{0,2000}$"


def scoped_cameras(site: SiteConfig, principal: Principal) -> list[str]:
    return [c.id for c in site.cameras if principal.sees_group(c.group)]


def _sla(row: dict[str, Any], targets: SlaTargets, now: datetime) -> dict[str, Any]:
    start: datetime = row["received_at"]
    ack_due = start + timedelta(seconds=targets.acknowledge_s)
    resolve_due = start + timedelta(seconds=targets.resolve_s)
    acked: datetime | None = row["acknowledged_at"] or row["assigned_at"] or row["resolved_at"]
    done: datetime | None = row["resolved_at"]
    return {
        "ack_due_at": ack_due,
        "resolve_due_at": resolve_due,
        "ack_breached": (acked or now) > ack_due,
        "resolve_breached": (done or now) > resolve_due,
    }


def incident_item(row: dict[str, Any], site: SiteConfig, now: datetime) -> dict[str, Any]:
    item = {**row, "sla": _sla(row, site.alerting.sla, now)}
    return site_row(item, ZoneInfo(site.site.timezone))


async def incident_by_id(
    pool: AsyncConnectionPool[Any], site: SiteConfig, incident_id: str
) -> dict[str, Any] | None:
    """One incident as the queue lists it (for the live stream), or None."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_ONE, (incident_id,))
        row = await cur.fetchone()
        now = await _now(conn)
    if row is None:
        return None
    row.pop("classes", None)
    row.pop("track_ids", None)
    return incident_item(row, site, now)


async def _now(conn: Any) -> datetime:
    cur = await conn.execute("SELECT now()")
    row = await cur.fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


@router.get("/incidents", summary="The incident queue, newest first, filtered")
async def list_incidents(
    pool: PoolDep,
    site: SiteDep,
    principal: Annotated[Principal, require(Perm.INCIDENTS)],
    workflow_state: Annotated[str | None, Query(description="Comma-separated states")] = None,
    type: Annotated[str | None, Query(description="Comma-separated incident types")] = None,
    camera: Annotated[str | None, Query(description="Comma-separated camera ids")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 200,
) -> dict[str, Any]:
    cams = scoped_cameras(site, principal)
    if camera:
        wanted = set(camera.split(","))
        cams = [c for c in cams if c in wanted]
    states = workflow_state.split(",") if workflow_state else None
    if states and not set(states) <= {"new", "acknowledged", "assigned", "resolved", "false_alarm"}:
        raise unprocessable("unknown workflow_state", "query", "workflow_state")
    params = {
        "cams": cams,
        "states": states,
        "types": type.split(",") if type else None,
        "since": since,
        "until": until,
        "limit": limit,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        now = await _now(conn)
        await cur.execute(_LIST, params)
        rows = await cur.fetchall()
    return {"incidents": [incident_item(r, site, now) for r in rows]}


async def _load(conn: Any, incident_id: UUID, cams: list[str], lock: bool = False) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_ONE_FOR_UPDATE if lock else _ONE, (incident_id,))
        row: dict[str, Any] | None = await cur.fetchone()
    if row is None or row["camera_id"] not in cams:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such incident")
    return row


@router.get("/incidents/{incident_id}", summary="One incident: evidence, event history, alerts, audit trail")
async def incident_detail(
    incident_id: UUID,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(Perm.INCIDENTS)],
) -> dict[str, Any]:
    cams = scoped_cameras(site, principal)
    async with pool.connection() as conn:
        async with conn.transaction():
            row = await _load(conn, incident_id, cams)
            # The track details are evidence: the look is recorded.
            await audit.append(
                conn, principal.name, "evidence_view", "incident", str(incident_id), {"what": "details"}
            )
        now = await _now(conn)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT event, ts AS at, summary, severity FROM incident_events WHERE incident_id = %s "
                "ORDER BY ts",
                (incident_id,),
            )
            events = await cur.fetchall()
            await cur.execute(
                "SELECT alert_id, rule_id, raised_at, escalation_levels FROM alerts WHERE incident_id = %s "
                "ORDER BY raised_at",
                (incident_id,),
            )
            alerts = await cur.fetchall()
            await cur.execute(
                "SELECT alert_id, escalation_level, channel, attempt, ok, status, error, at "
                "FROM alert_deliveries WHERE alert_id = ANY(%s) ORDER BY at",
                ([a["alert_id"] for a in alerts],),
            )
            deliveries = await cur.fetchall()
            await cur.execute(
                "SELECT at, actor, action, details FROM audit_log WHERE target_type = 'incident' "
                "AND target_id = %s ORDER BY id",
                (str(incident_id),),
            )
            trail = await cur.fetchall()
            await cur.execute("SELECT 1 FROM incident_clips WHERE incident_id = %s", (incident_id,))
            has_clip = await cur.fetchone() is not None
    for a in alerts:
        a["deliveries"] = [d for d in deliveries if d["alert_id"] == a["alert_id"]]
    item = incident_item(row, site, now)
    tz = ZoneInfo(site.site.timezone)
    item["snapshot_url"] = (
        f"{settings.public_url}/api/v1/incidents/{incident_id}/snapshot" if row["has_snapshot"] else None
    )
    # Video evidence (server/api/clips.py); it arrives some seconds after the start.
    item["clip_url"] = f"{settings.public_url}/api/v1/incidents/{incident_id}/clip" if has_clip else None
    item["events"] = site_json(events, tz)
    item["alerts"] = site_json(alerts, tz)
    item["audit"] = site_json(trail, tz)
    return item


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(
        default="", max_length=4000, pattern=r"^[^\x00]*$", description="What was done or seen."
    )
    assignee: str | None = Field(
        default=None, max_length=200, pattern=r"^[^\x00]*$", description="Officer or unit (assign only)."
    )


_TRANSITIONS: dict[str, tuple[set[str], str, Perm]] = {
    # action: (states it may start from, state it leads to, permission)
    "acknowledge": ({"new"}, "acknowledged", Perm.ACKNOWLEDGE),
    "assign": ({"new", "acknowledged", "assigned"}, "assigned", Perm.WORK),
    "resolve": ({"new", "acknowledged", "assigned"}, "resolved", Perm.WORK),
    "false-alarm": ({"new", "acknowledged", "assigned"}, "false_alarm", Perm.WORK),
}
_UPDATE: dict[str, LiteralString] = {
    "acknowledge": "UPDATE incidents SET workflow_state = 'acknowledged', acknowledged_at = now(), "
    "acknowledged_by = %(who)s WHERE incident_id = %(id)s",
    "assign": "UPDATE incidents SET workflow_state = 'assigned', assigned_to = %(assignee)s, "
    "assigned_at = now(), assigned_by = %(who)s, acknowledged_at = COALESCE(acknowledged_at, now()), "
    "acknowledged_by = COALESCE(acknowledged_by, %(who)s) WHERE incident_id = %(id)s",
    "resolve": "UPDATE incidents SET workflow_state = 'resolved', resolved_at = now(), "
    "resolved_by = %(who)s, resolution_note = %(note)s, acknowledged_at = COALESCE(acknowledged_at, now()), "
    "acknowledged_by = COALESCE(acknowledged_by, %(who)s) WHERE incident_id = %(id)s",
    "false-alarm": "UPDATE incidents SET workflow_state = 'false_alarm', resolved_at = now(), "
    "resolved_by = %(who)s, resolution_note = %(note)s, acknowledged_at = COALESCE(acknowledged_at, now()), "
    "acknowledged_by = COALESCE(acknowledged_by, %(who)s) WHERE incident_id = %(id)s",
}


async def _transition(
    action: str,
    incident_id: UUID,
    body: Action,
    pool: AsyncConnectionPool[Any],
    site: SiteConfig,
    principal: Principal,
) -> dict[str, Any]:
    starts, target, perm = _TRANSITIONS[action]
    if not principal.may(perm):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")
    if action == "assign" and not (body.assignee or "").strip():
        raise unprocessable("assign needs an assignee", "body", "assignee")
    if action in {"resolve", "false-alarm"} and not body.note.strip():
        raise unprocessable("a note is required to close an incident", "body", "note")
    async with pool.connection() as conn:
        async with conn.transaction():
            row = await _load(conn, incident_id, scoped_cameras(site, principal), lock=True)
            if row["workflow_state"] not in starts:
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"cannot {action} an incident that is {row['workflow_state']}"
                )
            await conn.execute(
                _UPDATE[action],
                {"who": principal.name, "id": incident_id, "note": body.note, "assignee": body.assignee},
            )
            details: dict[str, Any] = {"from": row["workflow_state"], "to": target, "note": body.note}
            if body.assignee:
                details["assignee"] = body.assignee
            await audit.append(
                conn, principal.name, action.replace("-", "_"), "incident", str(incident_id), details
            )
            note = json.dumps({"incident_workflow": str(incident_id), "camera": row["camera_id"]})
            await conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, note))
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_ONE, (incident_id,))
            updated = await cur.fetchone()
        now = await _now(conn)
    assert updated is not None
    return incident_item(updated, site, now)


def _action_route(action: str) -> None:
    async def run(
        incident_id: UUID,
        body: Action,
        pool: PoolDep,
        site: SiteDep,
        principal: Annotated[Principal, require(Perm.ACKNOWLEDGE)],
    ) -> dict[str, Any]:
        return await _transition(action, incident_id, body, pool, site, principal)

    run.__name__ = f"incident_{action.replace('-', '_')}"
    router.add_api_route(
        f"/incidents/{{incident_id}}/{action}",
        run,
        methods=["POST"],
        summary=f"{action.replace('-', ' ').capitalize()} an incident (with a note)",
        responses={409: {"description": "not allowed from the incident's current state"}},
    )


for _action in _TRANSITIONS:
    _action_route(_action)


@router.get(
    "/incidents/{incident_id}/snapshot",
    summary="The JPEG snapshot of an incident (audited)",
    response_class=Response,
)
async def snapshot(
    incident_id: UUID,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(Perm.EVIDENCE)],
) -> Response:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT i.camera_id, s.content_type, s.path, s.data FROM incidents i "
            "JOIN snapshots s ON s.id = i.snapshot_id WHERE i.incident_id = %s",
            (incident_id,),
        )
        row = await cur.fetchone()
        if row is None or row[0] not in scoped_cameras(site, principal):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such incident, or it has no snapshot")
        await audit.append(
            conn, principal.name, "evidence_view", "incident", str(incident_id), {"what": "snapshot"}
        )
    _, content_type, path, data = row
    if data is not None:
        return Response(bytes(data), media_type=content_type, headers={"Cache-Control": "private, no-store"})
    if settings.snapshot_dir is None or path is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "the snapshot is on disk but CITYWATCH_SNAPSHOT_DIR is unset"
        )
    file = (settings.snapshot_dir / path).resolve()
    if not file.is_relative_to(settings.snapshot_dir.resolve()) or not file.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "snapshot file missing")
    return FileResponse(file, media_type=content_type, headers={"Cache-Control": "private, no-store"})


_SLA: LiteralString = """
SELECT date_trunc(%(bin)s, received_at AT TIME ZONE %(tz)s) AS bin_start,
       count(*) AS incidents,
       count(acknowledged_at) AS acknowledged,
       count(resolved_at) AS resolved,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - received_at))
           AS ack_p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - received_at))
           AS ack_p90_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - received_at))
           AS resolve_p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - received_at))
           AS resolve_p90_s,
       count(*) FILTER (WHERE COALESCE(acknowledged_at, %(now)s) - received_at > %(ack)s) AS ack_breaches,
       count(*) FILTER (WHERE COALESCE(resolved_at, %(now)s) - received_at > %(resolve)s) AS resolve_breaches
FROM incidents
WHERE camera_id = ANY(%(cams)s) AND received_at >= %(start)s AND received_at < %(end)s
GROUP BY 1 ORDER BY 1
"""


_SLA_FIGURES = (
    "incidents",
    "acknowledged",
    "resolved",
    "ack_p50_s",
    "ack_p90_s",
    "resolve_p50_s",
    "resolve_p90_s",
    "ack_breaches",
    "resolve_breaches",
)


@router.get("/sla", summary="SLA report: time to acknowledge and to resolve, per day/week/month")
async def sla_report(
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(Perm.HISTORY)],
    start: datetime,
    end: datetime,
    bin: Literal["day", "week", "month"] = "day",
) -> dict[str, Any]:
    """Callers without the incidents permission get whole local days and no bin of fewer than ``k``
    incidents (its figures null, ``suppressed`` true): a bisected range would date each incident."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise unprocessable("start and end need a time zone, end > start", "query", "end")
    check_span(start, end, settings.history_max_days)
    k = None if principal.may(Perm.INCIDENTS) else settings.aggregate_k
    if k is not None:
        start, end = snap(start, end, "1d", ZoneInfo(site.site.timezone))
    targets = site.alerting.sla
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        now = await _now(conn)
        await cur.execute(
            _SLA,
            {
                "bin": bin,
                "tz": site.site.timezone,
                "now": now,
                "ack": timedelta(seconds=targets.acknowledge_s),
                "resolve": timedelta(seconds=targets.resolve_s),
                "cams": scoped_cameras(site, principal),
                "start": start,
                "end": end,
            },
        )
        rows = await cur.fetchall()
    tz = ZoneInfo(site.site.timezone)
    for r in rows:
        r["bin_start"] = r["bin_start"].replace(tzinfo=tz).isoformat()
    figures = [c for c in _SLA_FIGURES if c != "incidents"]
    return {
        "targets": {"ack_s": targets.acknowledge_s, "resolve_s": targets.resolve_s},
        "bins": suppress(rows, k or 1, count="incidents", hide=figures),
    }


# --- alert rules ---------------------------------------------------------------------------------
@router.get("/alerting/rules", summary="The alert rules in force (admin)")
async def get_rules(request: Request, _: Annotated[Principal, require(Perm.ADMIN)]) -> dict[str, Any]:
    engine = request.app.state.alerts
    site: SiteConfig = request.app.state.site
    rules = engine.rules.rules if engine is not None else site.alerting.rules
    return {
        "rules": [r.model_dump(mode="json") for r in rules],
        "channels": sorted({*site.alerting.channels, LIVE_ALERT_CHANNEL}),
    }


@router.put("/alerting/rules", summary="Replace the alert rules (admin); stored, applied at once")
async def put_rules(
    body: list[dict[str, Any]],
    request: Request,
    pool: PoolDep,
    principal: Annotated[Principal, require(Perm.ADMIN)],
) -> dict[str, Any]:
    site: SiteConfig = request.app.state.site
    try:
        rules = [AlertRule.model_validate(r) for r in body]
    except ValidationError as exc:
        raise from_errors(exc.errors(), "body") from exc
    try:  # the same checks as the site file's section: unique ids, channels that exist
        AlertingSection(channels=site.alerting.channels, rules=rules, sla=site.alerting.sla)
    except ValidationError as exc:
        raise from_errors(exc.errors(), "body") from exc
    stored = [r.model_dump(mode="json") for r in rules]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO alert_rules (id, rules, updated_by) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now(), "
            "updated_by = EXCLUDED.updated_by",
            (Jsonb(stored), principal.name),
        )
        await audit.append(
            conn, principal.name, "rules_change", "alert_rules", "1", {"rules": [r.id for r in rules]}
        )
    if request.app.state.alerts is not None:
        request.app.state.alerts.reload(rules)
    return {"rules": stored}
