"""Security headers on every HTTP response, and the API explorer (/docs) served from local files.

The page loads nothing from another origin but its map tiles (``CITYWATCH_TILE_URL``), so the policy is
``'self'`` plus the tiles' origin for images; no inline script (``style-src`` allows inline styles,
which Leaflet and Chart.js set). Framing is refused (clickjacking), MIME sniffing is off and the
referrer never leaves the origin. Swagger UI comes from the npm package ``swagger-ui-dist``, copied
next to the page by ``scripts/build_web.sh`` like Leaflet; without it /docs says so and points to
/openapi.json.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.web.routes import DEFAULT_TILES, STATIC

SWAGGER = STATIC / "vendor" / "swagger-ui"


def tile_origin(template: str) -> str:
    """The origin of a tile URL template, as a CSP source (``{s}`` subdomains become ``*``)."""
    parts = urlsplit(template.replace("{s}", "*"))
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(tile_template: str) -> str:
    tiles = tile_origin(tile_template)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src 'self' data: blob:{' ' + tiles if tiles else ''}",
            # Evidence clips are fetched with the user's token and played from a blob: URL.
            "media-src 'self' blob:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response (errors and static files included)."""

    def __init__(self, app: ASGIApp, tile_template: str | None = None) -> None:
        self.app = app
        csp = content_security_policy(tile_template or os.environ.get("CITYWATCH_TILE_URL", DEFAULT_TILES))
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


docs = APIRouter(include_in_schema=False)

_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>citywatch API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body></html>
"""
_NO_ASSETS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>citywatch API</title></head>
<body><p>The API explorer's files are not installed (run <code>scripts/build_web.sh</code>).
The API description is at <a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""


@docs.get("/docs")
async def api_docs() -> HTMLResponse:
    """Swagger UI from local files (never a CDN)."""
    if not (SWAGGER / "swagger-ui-bundle.js").exists():
        return HTMLResponse(_NO_ASSETS, status_code=503)
    return HTMLResponse(_DOCS_PAGE)
