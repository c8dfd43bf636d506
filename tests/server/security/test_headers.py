"""Security headers on every response and an API explorer without a CDN (issue 12, item 10).

How main failed: no Content-Security-Policy, nosniff, framing or referrer header on any response, and
/docs loaded Swagger UI from cdn.jsdelivr.net (and /redoc from another CDN)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from server.web.headers import SWAGGER, content_security_policy, tile_origin

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/static/app.js", 200),
        ("/healthz", 200),
        ("/openapi.json", 200),
        ("/api/v1/live/cameras", 401),
        ("/api/v1/no-such-route", 404),
    ],
)
def test_every_response_carries_the_security_headers(client: TestClient, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_docs_load_nothing_from_another_origin(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == (200 if (SWAGGER / "swagger-ui-bundle.js").exists() else 503)
    sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert sources and all(s.startswith(("/", "data:")) for s in sources), sources
    assert "/openapi.json" in r.text or "/static/docs.js" in r.text
    assert "<script>" not in r.text  # no inline script: the CSP forbids it
    assert client.get("/redoc").status_code == 404  # ReDoc only exists as a CDN page: gone


def test_the_map_tiles_origin_is_the_only_other_image_source() -> None:
    assert tile_origin("https://tile.openstreetmap.org/{z}/{x}/{y}.png") == "https://tile.openstreetmap.org"
    assert tile_origin("https://{s}.tiles.example/{z}/{x}/{y}.png") == "https://*.tiles.example"
    assert tile_origin("javascript:alert(1)") == ""
    csp = content_security_policy("https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: blob: https://tile.openstreetmap.org;" in csp
