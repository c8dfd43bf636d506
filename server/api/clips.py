"""Video evidence of incidents: ``GET /api/v1/incidents/{id}/clip`` (every look is audited).

Clips arrive from the edge as evidence messages some seconds after the incident starts (they hold the
seconds after it too), so an incident may have a snapshot and, a little later, a clip.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import FileResponse

from server.api.deps import PoolDep, SettingsDep, SiteDep
from server.api.incidents import scoped_cameras
from server.auth import audit
from server.auth.deps import Principal, require
from server.auth.roles import Perm

router = APIRouter(prefix="/api/v1", tags=["incidents"])

_HEADERS = {"Cache-Control": "private, no-store", "Accept-Ranges": "bytes"}


@router.get(
    "/incidents/{incident_id}/clip",
    summary="The video clip of an incident, WebM (audited)",
    response_class=Response,
    responses={404: {"description": "no such incident, or no clip (yet)"}},
)
async def clip(
    incident_id: UUID,
    pool: PoolDep,
    site: SiteDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(Perm.EVIDENCE)],
) -> Response:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT camera_id, content_type, path, data FROM incident_clips WHERE incident_id = %s",
            (incident_id,),
        )
        row = await cur.fetchone()
        if row is None or row[0] not in scoped_cameras(site, principal):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such incident, or it has no clip (yet)")
        await audit.append(
            conn, principal.name, "evidence_view", "incident", str(incident_id), {"what": "clip"}
        )
    _, content_type, path, data = row
    if data is not None:
        return Response(bytes(data), media_type=content_type, headers=_HEADERS)
    if settings.snapshot_dir is None or path is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "the clip is on disk but CITYWATCH_SNAPSHOT_DIR is unset"
        )
    file = (settings.snapshot_dir / path).resolve()
    if not file.is_relative_to(settings.snapshot_dir.resolve()) or not file.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "clip file missing")
    return FileResponse(file, media_type=content_type, headers=_HEADERS)
