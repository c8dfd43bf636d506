"""Routes of the web app: the page, its static assets, the site description it starts from, and a proxy
for the edge's latest annotated camera frame.

The page is one single-page app (``static/index.html`` + plain JS modules). Leaflet and Chart.js are
installed from the npm registry and copied next to the page by ``scripts/build_web.sh`` (run by the
project's install); nothing is loaded from a CDN. Map tiles come from a configurable URL
(``CITYWATCH_TILE_URL``, OpenStreetMap by default); with no tiles reachable the page still shows the
cameras and incidents on a plain background.

Camera frames come from the edge: ``CITYWATCH_EDGE_FRAME_URL`` is a template such as
``http://127.0.0.1:9100/cameras/{camera_id}/frame.jpg``. The server fetches it (2 s timeout) so the
browser needs no route to the edge network. Errors: unset template -> 404; no answer from the edge
(connection refused, timeout, broken response) -> 502; the edge's own 404 -> 404; anything but
image/jpeg or image/png, or a body over 8 MiB (read as it arrives, never whole) -> 502.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Response, status
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from server.api.deps import SiteDep
from server.api.incidents import scoped_cameras
from server.auth.deps import Principal, require
from server.auth.roles import Perm

# httpx errors the frame proxy maps to 502 (the edge did not answer usefully):
#   httpx.TimeoutException (connect/read/write/pool timeouts) < httpx.TransportError < httpx.HTTPError
#   httpx.ConnectError, httpx.RemoteProtocolError, ...          < httpx.TransportError
# httpx.InvalidURL (a bad template) is a configuration error: 500 with the reason.

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
FRAME_URL_ENV = "CITYWATCH_EDGE_FRAME_URL"
FRAME_TIMEOUT_S = 2.0
#: What the proxy passes on: JPEG and PNG only (an SVG is a document that can run script), this large.
FRAME_TYPES = frozenset({"image/jpeg", "image/png"})
FRAME_MAX_BYTES = 8 * 1024 * 1024

router = APIRouter(tags=["web"])
frames = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/api/v1/site", summary="The site: name, time zone, map centre, cameras and map settings")
async def site_info(site: SiteDep, _: Annotated[Principal, require(Perm.SITE)]) -> dict[str, Any]:
    return {
        "id": site.site.id,
        "name": site.site.name,
        "timezone": site.site.timezone,
        "center": {"lat": site.site.center.lat, "lon": site.site.center.lon},
        "zoom": site.site.zoom,
        "tile_url": os.environ.get("CITYWATCH_TILE_URL", DEFAULT_TILES),
        "cameras": [
            {
                "camera_id": c.id,
                "name": c.name,
                "group": c.group,
                "heading": c.heading,
                "location": {"lat": c.location.lat, "lon": c.location.lon},
            }
            for c in site.cameras
        ],
    }


@frames.get(
    "/{camera_id}/frame.jpg",
    summary="The latest annotated frame of a camera, fetched from its edge worker",
    response_class=Response,
    responses={404: {"description": "unknown camera, no frame URL configured, or no frame at the edge"},
               502: {"description": "the edge did not answer (within 2 s) or answered with an error"}},
)  # fmt: skip
async def camera_frame(
    camera_id: str, site: SiteDep, principal: Annotated[Principal, require(Perm.LIVE)]
) -> Response:
    # Frames are live data: the live map's permission, and only cameras of the caller's groups.
    if camera_id not in scoped_cameras(site, principal):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown camera: {camera_id}")
    template = os.environ.get(FRAME_URL_ENV, "").strip()
    if not template:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"live frames are not configured: set {FRAME_URL_ENV} (e.g. "
            "http://edge-host:9100/cameras/{camera_id}/frame.jpg)",
        )
    url = template.replace("{camera_id}", quote(camera_id, safe=""))
    try:
        async with httpx.AsyncClient(timeout=FRAME_TIMEOUT_S) as client, client.stream("GET", url) as answer:
            if answer.status_code == status.HTTP_404_NOT_FOUND:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"the edge has no frame for camera {camera_id}"
                )
            if answer.status_code != status.HTTP_200_OK:
                raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"the edge answered {answer.status_code}")
            media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type not in FRAME_TYPES:  # never SVG (scripts) or anything a browser might run
                raise HTTPException(
                    status.HTTP_502_BAD_GATEWAY, f"the edge sent {media_type or 'no type'}, not a JPEG or PNG"
                )
            body = await _bounded(answer, camera_id)
    except httpx.InvalidURL as exc:
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR, f"{FRAME_URL_ENV} is not a valid URL template"
        ) from exc
    except httpx.TimeoutException as exc:
        log.warning(
            "frame proxy: camera %s: the edge did not answer within %.0f s", camera_id, FRAME_TIMEOUT_S
        )
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"the edge did not answer within {FRAME_TIMEOUT_S:.0f} s"
        ) from exc
    except httpx.TransportError as exc:
        log.warning("frame proxy: camera %s: edge unreachable (%s)", camera_id, type(exc).__name__)
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"the edge is unreachable ({type(exc).__name__})"
        ) from exc
    return Response(
        body,
        media_type=media_type,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; sandbox"},
    )


async def _bounded(answer: httpx.Response, camera_id: str) -> bytes:
    """The body, read up to ``FRAME_MAX_BYTES`` (502 beyond: a frame is never that large)."""
    declared = answer.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > FRAME_MAX_BYTES:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"the edge's frame is over {FRAME_MAX_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in answer.aiter_bytes():
        size += len(chunk)
        if size > FRAME_MAX_BYTES:
            log.warning(
                "frame proxy: camera %s: the edge sent over %d bytes; refused", camera_id, FRAME_MAX_BYTES
            )
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY, f"the edge's frame is over {FRAME_MAX_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def mount(app: FastAPI) -> None:
    """Add the page, its assets, the site route and the camera-frame proxy to an app."""
    app.include_router(router)
    app.include_router(frames)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
