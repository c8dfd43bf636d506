"""The public open-data page (no login): ``/open/`` serves ``static/public.html``; its script and styles
are separate files under ``/static`` (works under a strict CSP: no inline code, no CDN)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from server.web.routes import STATIC

router = APIRouter(tags=["open data"])


@router.get("/open", include_in_schema=False)
async def open_redirect() -> RedirectResponse:
    return RedirectResponse("/open/")


@router.get("/open/", include_in_schema=False)
async def public_page() -> FileResponse:
    return FileResponse(STATIC / "public.html", media_type="text/html")
