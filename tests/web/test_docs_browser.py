"""The API explorer (/docs) in headless Chromium under the server's Content-Security-Policy: Swagger UI
comes from the server itself (no CDN request at all) and renders the OpenAPI document (issue 12)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from server.web.headers import SWAGGER
from tests.web.conftest import WebServer

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_docs_render_from_local_files_under_the_csp(browser: Any, web_server: WebServer) -> None:
    if not (SWAGGER / "swagger-ui-bundle.js").exists():
        pytest.skip("Swagger UI is not installed: run scripts/build_web.sh")
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
    try:
        page.goto(web_server.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
        assert "citywatch server" in page.locator(".swagger-ui .info .title").inner_text()
        page.wait_for_selector(".opblock-summary-path", timeout=15_000)  # the operations are listed
    finally:
        context.close()
    assert hosts == {urlsplit(web_server.url).netloc}, hosts  # nothing from another origin
    assert not errors, errors  # in particular, no Content-Security-Policy violation
