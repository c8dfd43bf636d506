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

import cv2
import numpy as np
import pytest
from fastapi import HTTPException

from citywatch.site import SiteConfig, load_site
from server.auth.deps import Principal
from server.auth.roles import Role
from server.web.routes import FRAME_URL_ENV, camera_frame
from tests.server.helpers import write_site
from tests.web.conftest import frame_jpeg

JPEG = frame_jpeg()
PNG = bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1])


class _Edge(BaseHTTPRequestHandler):
    """cam-a: a frame; cam-slow: answers after 3 s; cam-gone: 404; cam-broken: 500; cam-html: not an image;
    cam-png: a PNG; cam-svg: an SVG (a document with script); cam-huge: declares 50 MiB; cam-endless:
    declares no length and sends 9 MiB."""

    def do_GET(self) -> None:
        cam = self.path.split("/")[2]
        if cam == "cam-slow":
            time.sleep(3)
        if cam in {"cam-a", "cam-slow"}:
            self._send(200, "image/jpeg", JPEG)
        elif cam == "cam-html":
            self._send(200, "text/html", b"<html></html>")
        elif cam == "cam-png":
            self._send(200, "image/png", PNG)
        elif cam == "cam-svg":
            self._send(
                200,
                "image/svg+xml",
                b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            )
        elif cam == "cam-huge":
            self._send(200, "image/jpeg", JPEG, length=50 * 1024 * 1024)
        elif cam == "cam-endless":
            self._send(200, "image/jpeg", JPEG + b"\0" * (9 * 1024 * 1024), length=None)
        elif cam == "cam-broken":
            self._send(500, "text/plain", b"boom")
        else:
            self._send(404, "text/plain", b"no frame")

    def _send(self, code: int, ctype: str, body: bytes, length: int | bool | None = True) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(len(body) if length is True else length))
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
    cams = [
        "cam-a",
        "cam-slow",
        "cam-gone",
        "cam-broken",
        "cam-html",
        "cam-png",
        "cam-svg",
        "cam-huge",
        "cam-endless",
    ]
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
        pytest.param("cam-html", 502, "not a JPEG or PNG", id="edge-not-an-image"),
        # Issue 12: an SVG is an image/* that runs script; a frame is never 8 MiB (read bounded).
        pytest.param("cam-svg", 502, "image/svg+xml, not a JPEG or PNG", id="edge-svg"),
        pytest.param("cam-huge", 502, "over 8388608 bytes", id="edge-declares-a-huge-body"),
        pytest.param("cam-endless", 502, "over 8388608 bytes", id="edge-sends-an-endless-body"),
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


def test_png_passes_through(site: SiteConfig, edge_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FRAME_URL_ENV, edge_url)
    answer = _call(site, "cam-png")
    assert answer.status_code == 200 and answer.body == PNG and answer.media_type == "image/png"


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
