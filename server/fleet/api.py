"""Fleet routes: every edge and camera with its state (operators look), camera configs and the site
file (admins change; every change audited, validated like ``citywatch config check``, pushed at once)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from citywatch.site import ConfigError, SiteConfig, parse_site
from citywatch.site_doc import camera_document
from contract.topics import ID_PATTERN
from server.api.deps import PoolDep
from server.auth.deps import Principal, require
from server.auth.roles import Perm
from server.fleet import registry
from server.fleet.lifecycle import push

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"])
AdminDep = Annotated[Principal, require(Perm.ADMIN)]
ViewerDep = Annotated[Principal, require(Perm.LIVE)]
CameraId = Annotated[str, Path(pattern=ID_PATTERN)]
#: An edge that has not announced itself for this long is shown as silent.
SILENT_AFTER_S = 120.0
UNPROCESSABLE = 422


class FieldIssueOut(BaseModel):
    field: str = Field(description="Path inside the camera, e.g. 'lines[0].points'; empty: the camera.")
    message: str


class EdgeOut(BaseModel):
    group: str
    edge_id: str
    version: str
    models: list[dict[str, Any]]
    config_version: int | None
    desired_version: int | None
    config_error: str
    rejected_version: int | None
    cameras: list[str]
    host: dict[str, Any]
    last_seen: datetime
    silent: bool
    alerts: list[str] = Field(description="Drift and health alerts: config behind, rejected, silent.")


class CameraOut(BaseModel):
    id: str
    name: str
    group: str
    state: str | None
    fps: float | None
    outbox_depth: int | None
    config_version: int | None
    model: str
    last_seen: datetime | None
    alerts: list[str]


class Rollout(BaseModel):
    model: str | None
    sha256: str | None
    previous_model: str | None
    previous_sha256: str | None


class FleetOut(BaseModel):
    edges: list[EdgeOut]
    cameras: list[CameraOut]
    groups: list[str]
    desired: dict[str, int]
    rollouts: dict[str, Rollout] = Field(description="The model pinned per group, and the one before.")


class ModelAssign(BaseModel):
    model: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$", description="Path on the edges.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The checksum the edges must find.")


def _site(request: Request) -> SiteConfig:
    site: SiteConfig = request.app.state.site
    return site


@router.get("", summary="Every edge and camera with state, versions and drift alerts")
async def fleet(request: Request, pool: PoolDep, _: ViewerDep) -> FleetOut:
    site = _site(request)
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT camera_group, config_version, model, model_sha256, previous_model, previous_sha256 "
            "FROM fleet_groups"
        )
        group_rows = await cur.fetchall()
        desired = {str(r[0]): int(r[1]) for r in group_rows}
        rollouts = {
            str(r[0]): Rollout(model=r[2], sha256=r[3], previous_model=r[4], previous_sha256=r[5])
            for r in group_rows
        }
        cur = await conn.execute("SELECT camera_group, edge_id, announce, last_seen FROM fleet_edges")
        edge_rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT camera_id, state, last_seen_at, last_heartbeat FROM camera_live "
            "WHERE camera_id = ANY(%s)",
            ([c.id for c in site.cameras],),
        )
        live = {str(r[0]): r for r in await cur.fetchall()}
    edges = []
    for group, edge_id, ann, last_seen in edge_rows:
        want = desired.get(group)
        silent = (now - last_seen).total_seconds() > SILENT_AFTER_S
        alerts = []
        if ann.get("config_error"):
            alerts.append(f"config v{ann.get('rejected_version')} rejected: {ann['config_error'][:300]}")
        if want is not None and ann.get("config_version") != want:
            alerts.append(f"config drift: runs v{ann.get('config_version')}, desired v{want}")
        pin = rollouts.get(group)
        if (
            pin is not None
            and pin.sha256
            and pin.sha256 not in {m.get("sha256") for m in ann.get("models", [])}
        ):
            alerts.append(f"model drift: {pin.sha256[:12]} is not running yet")
        if silent:
            alerts.append(f"silent for {int((now - last_seen).total_seconds())} s")
        edges.append(
            EdgeOut(
                group=group,
                edge_id=edge_id,
                version=ann.get("version", ""),
                models=ann.get("models", []),
                config_version=ann.get("config_version"),
                desired_version=want,
                config_error=ann.get("config_error", ""),
                rejected_version=ann.get("rejected_version"),
                cameras=ann.get("cameras", []),
                host=ann.get("host", {}),
                last_seen=last_seen,
                silent=silent,
                alerts=alerts,
            )
        )
    cameras = []
    for cam in site.cameras:
        row = live.get(cam.id)
        beat: dict[str, Any] = (row[3] if row else None) or {}
        version = beat.get("config_version")
        alerts = []
        want = desired.get(cam.group)
        if want is not None and version is not None and version != want:
            alerts.append(f"config drift: runs v{version}, desired v{want}")
        if row is None:
            alerts.append("never seen")
        cameras.append(
            CameraOut(
                id=cam.id,
                name=cam.name,
                group=cam.group,
                state=row[1] if row else None,
                fps=beat.get("fps"),
                outbox_depth=beat.get("outbox_depth"),
                config_version=version,
                model=cam.detector.model,
                last_seen=row[2] if row else None,
                alerts=alerts,
            )
        )
    groups = sorted({c.group for c in site.cameras} | set(desired))
    return FleetOut(edges=edges, cameras=cameras, groups=groups, desired=desired, rollouts=rollouts)


GroupId = Annotated[str, Path(pattern=ID_PATTERN)]


@router.put(
    "/groups/{group}/model",
    summary="Roll a model out to a camera group, pinned by checksum (admin); edges refuse a mismatch",
)
async def assign_model(
    group: GroupId, body: ModelAssign, request: Request, pool: PoolDep, admin: AdminDep
) -> Rollout:
    return await _rollout(group, body.model, body.sha256, request, pool, admin)


@router.post("/groups/{group}/model/rollback", summary="Roll a group back to its previous model (admin)")
async def rollback_model(group: GroupId, request: Request, pool: PoolDep, admin: AdminDep) -> Rollout:
    return await _rollout(group, None, None, request, pool, admin)


async def _rollout(
    group: str, model: str | None, sha: str | None, request: Request, pool: Any, admin: Principal
) -> Rollout:
    try:
        async with pool.connection() as conn:
            cfg = await registry.assign_model(conn, group, model, sha, admin.name)
            cur = await conn.execute(
                "SELECT model, model_sha256, previous_model, previous_sha256 FROM fleet_groups "
                "WHERE camera_group = %s",
                (group,),
            )
            row = await cur.fetchone()
    except registry.CameraRejectedError as exc:
        issues = [FieldIssueOut(field=i.field, message=i.message).model_dump() for i in exc.issues]
        code = status.HTTP_404_NOT_FOUND if "no camera group" in str(exc) else status.HTTP_409_CONFLICT
        raise HTTPException(code, issues) from exc
    await push(request.app, cfg, {group})
    return Rollout(model=row[0], sha256=row[1], previous_model=row[2], previous_sha256=row[3])


@router.get("/cameras/{camera_id}", summary="A camera's desired config (admin)")
async def get_camera(camera_id: CameraId, request: Request, _: AdminDep) -> dict[str, Any]:
    try:
        return camera_document(_site(request).camera(camera_id))
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None


@router.put(
    "/cameras/{camera_id}",
    summary="Add or change a camera (admin); validated like `citywatch config check`, then pushed",
    responses={422: {"description": "the camera is invalid; `detail` lists each field's problem"}},
)
async def put_camera(
    camera_id: CameraId,
    body: Annotated[dict[str, Any], Body(description="A site-file camera entry as JSON.")],
    request: Request,
    pool: PoolDep,
    admin: AdminDep,
) -> dict[str, Any]:
    body = {**body, "id": camera_id}
    try:
        async with pool.connection() as conn:
            cfg, created = await registry.put_camera(conn, body, admin.name)
    except registry.CameraRejectedError as exc:
        issues = [FieldIssueOut(field=i.field, message=i.message).model_dump() for i in exc.issues]
        raise HTTPException(UNPROCESSABLE, issues) from exc
    except registry.NotSeededError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    await push(request.app, cfg, {cfg.camera(camera_id).group})
    return {"created": created, "camera": camera_document(cfg.camera(camera_id))}


@router.delete("/cameras/{camera_id}", summary="Remove a camera (admin); pushed to its edge")
async def delete_camera(
    camera_id: CameraId, request: Request, pool: PoolDep, admin: AdminDep
) -> dict[str, str]:
    try:
        async with pool.connection() as conn:
            group = await registry.delete_camera(conn, camera_id, admin.name)
            cfg = await registry.export_site(conn) if group else None
    except registry.CameraRejectedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    if group is None or cfg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
    await push(request.app, cfg, {group})
    return {"removed": camera_id}


@router.get("/site.yaml", summary="Export the site file (admin)", response_class=PlainTextResponse)
async def export_site(pool: PoolDep, _: AdminDep) -> str:
    async with pool.connection() as conn:
        try:
            cfg = await registry.export_site(conn)
        except registry.NotSeededError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return registry.to_yaml(cfg)


@router.put(
    "/site.yaml",
    summary="Import a site file (admin): replaces every camera; pushed to every edge",
    responses={422: {"description": "the file is invalid; `detail` lists every issue"}},
    openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}},
)
async def import_site(request: Request, pool: PoolDep, admin: AdminDep) -> dict[str, int]:
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(UNPROCESSABLE, "the file is not UTF-8") from exc
    try:
        cfg = await asyncio.to_thread(parse_site, text, "import", {})
    except ConfigError as exc:
        detail = [{"field": i.path, "line": i.line, "message": i.message} for i in exc.issues]
        raise HTTPException(UNPROCESSABLE, detail) from exc
    if cfg.site.id != _site(request).site.id:
        raise HTTPException(UNPROCESSABLE, "the file is for another site")
    async with pool.connection() as conn:
        await registry.import_site(conn, cfg, admin.name)
    await push(request.app, cfg, None)
    return {"cameras": len(cfg.cameras)}
