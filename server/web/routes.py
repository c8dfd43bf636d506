"""Routes of the web app: the map page, its static assets and the site description it starts from.

Leaflet is installed from the npm registry and copied next to the page by ``scripts/build_web.sh``
(run by the project's install); nothing is loaded from a CDN. Map tiles come from a configurable URL
(``CITYWATCH_TILE_URL``, OpenStreetMap by default); with no tiles reachable the page still shows the
cameras and incidents on a plain background.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from server.api.deps import SiteDep

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/api/v1/site", summary="The site: name, time zone, map centre, cameras and map settings")
async def site_info(site: SiteDep) -> dict[str, Any]:
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


def mount(app: FastAPI) -> None:
    """Add the page, its assets and the site route to an app."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
