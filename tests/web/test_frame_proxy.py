"""The camera-frame proxy (``GET /api/v1/cameras/{id}/frame.jpg``) against a real local HTTP server
standing in for the edge: the image passes through; every way the edge can fail maps to a clear status.
The route is called directly (no database needed); its auth dependency is covered by the browser tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import HTTPException

from citywatch.site import SiteConfig, load_site
from server.auth.deps import Principal
from server.auth.roles import Role
from server.web.routes import FRAME_URL_ENV, camera_frame
from tests.server.helpers import write_site
from tests.web.conftest import frame_jpeg

JPEG = frame_jpeg()


class _Edge(BaseHTTPRequestHandler):
    """cam-a: a frame; cam-slow: answers after 3 s; cam-gone: 404; cam-broken: 500; cam-html: not an image."""

    def do_GET(self) -> None:
        cam = self.path.split("/")[2]
        if cam == "cam-slow":
            time.sleep(3)
        if cam in {"cam-a", "cam-slow"}:
            self._send(200, "image/jpeg", JPEG)
        elif cam == "cam-html":
            self._send(200, "text/html", b"<html></html>")
        elif cam == "cam-broken":
            self._send(500, "text/plain", b"boom")
        else:
            self._send(404, "text/plain", b"no frame")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy gave up waiting (the timeout case)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def edge_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Edge)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/cameras/{{camera_id}}/frame.jpg"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SiteConfig:
    cams = ["cam-a", "cam-slow", "cam-gone", "cam-broken", "cam-html"]
    return load_site(write_site(tmp_path_factory.mktemp("site"), "proxy", "cwproxy", cams))


OPERATOR = Principal("op", Role.OPERATOR, None)


def _call(site: SiteConfig, camera_id: str, who: Principal = OPERATOR) -> Any:
    return asyncio.run(camera_frame(camera_id, site, who))


def test_frame_passes_through(site: SiteConfig, edge_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FRAME_URL_ENV, edge_url)
    answer = _call(site, "cam-a")
    assert answer.status_code == 200
    assert answer.body == JPEG
    assert answer.media_type == "image/jpeg"
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("camera_id", "status", "detail"),
    [
        pytest.param("cam-slow", 502, "did not answer within 2 s", id="edge-timeout"),
        pytest.param("cam-broken", 502, "answered 500", id="edge-error"),
        pytest.param("cam-html", 502, "not an image", id="edge-not-an-image"),
        pytest.param("cam-gone", 404, "no frame for camera cam-gone", id="edge-has-no-frame"),
        pytest.param("cam-zzz", 404, "unknown camera", id="unknown-camera"),
    ],
)
def test_edge_failures_map_to_clear_statuses(
    site: SiteConfig, edge_url: str, monkeypatch: pytest.MonkeyPatch, camera_id: str, status: int, detail: str
) -> None:
    monkeypatch.setenv(FRAME_URL_ENV, edge_url)
    started = time.monotonic()
    with pytest.raises(HTTPException) as err:
        _call(site, camera_id)
    assert err.value.status_code == status
    assert detail in str(err.value.detail)
    assert time.monotonic() - started < 2.8  # the 2 s timeout holds


def test_unreachable_edge_is_502(site: SiteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.mosquitto import free_port

    monkeypatch.setenv(FRAME_URL_ENV, f"http://127.0.0.1:{free_port()}/cameras/{{camera_id}}/frame.jpg")
    with pytest.raises(HTTPException) as err:
        _call(site, "cam-a")
    assert err.value.status_code == 502
    assert "unreachable" in str(err.value.detail)


def test_unset_template_is_404_saying_what_to_set(site: SiteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FRAME_URL_ENV, raising=False)
    with pytest.raises(HTTPException) as err:
        _call(site, "cam-a")
    assert err.value.status_code == 404
    assert FRAME_URL_ENV in str(err.value.detail)


def test_cameras_outside_the_callers_groups_are_404(
    site: SiteConfig, edge_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FRAME_URL_ENV, edge_url)
    scoped = Principal("op2", Role.OPERATOR, ("some-other-group",))
    with pytest.raises(HTTPException) as err:
        _call(site, "cam-a", scoped)
    assert err.value.status_code == 404
