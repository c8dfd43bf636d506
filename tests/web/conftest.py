"""Fixtures of the web-app tests: one real server (subprocess) per module with a fresh database, the
real broker, a fake edge frame server (the only fake: it stands at the HTTP boundary), users of every
role, and a headless Chromium."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT

# fresh_db: a new database per module, from the server tests
from tests.server.conftest import fresh_db  # noqa: F401
from tests.server.helpers import Publisher, write_site
from tests.server.server_proc import ServerProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = ROOT / ".artifacts"
PASSWORD = "correct horse battery staple"
ROLES = ("admin", "operator", "police", "planner")
CAMERAS = ["cam-a", "cam-b"]


def frame_jpeg() -> bytes:
    """A recognisable annotated frame: dark road, a green box (what the edge draws)."""
    img = np.full((180, 320, 3), 60, np.uint8)
    cv2.rectangle(img, (100, 60), (220, 140), (0, 200, 0), 4)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf)


class _EdgeHandler(BaseHTTPRequestHandler):
    body = b""
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith("/cameras/") and self.path.endswith("/frame.jpg"):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class FakeEdge:
    """An HTTP server answering ``/cameras/<id>/frame.jpg`` like an edge worker does."""

    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def fake_edge() -> Iterator[FakeEdge]:
    hits: list[str] = []
    handler = type("Handler", (_EdgeHandler,), {"body": frame_jpeg(), "hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeEdge(f"http://127.0.0.1:{httpd.server_address[1]}", hits)
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class WebServer:
    proc: ServerProcess
    site_id: str
    prefix: str
    dsn: str

    @property
    def url(self) -> str:
        return self.proc.url


@pytest.fixture(scope="module")
def web_server(
    tmp_path_factory: pytest.TempPathFactory,
    fresh_db: str,  # noqa: F811
    mqtt_host_port: tuple[str, int],
    fake_edge: FakeEdge,
) -> Iterator[WebServer]:
    if not (ROOT / "server" / "web" / "static" / "vendor" / "chart.js" / "chart.umd.js").exists():
        pytest.fail(
            "the web libraries are not vendored: run scripts/build_web.sh (scripts/bootstrap.sh does)"
        )
    from server.auth.users import create_user

    unique = uuid.uuid4().hex[:10]
    tmp = tmp_path_factory.mktemp("web")
    site_id, prefix = f"web{unique}", f"cwweb{unique}"
    site = write_site(tmp, site_id, prefix, CAMERAS)
    host, port = mqtt_host_port
    proc = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://{host}:{port}",
            "MQTT_CLIENT_ID": f"cw-web-{unique}",
            "CITYWATCH_SITE": str(site),
            "CITYWATCH_TILE_URL": "",  # no tiles here: the map must work on a plain background
            "CITYWATCH_EDGE_FRAME_URL": fake_edge.url + "/cameras/{camera_id}/frame.jpg",
            "CITYWATCH_JWT_SECRET": "test-secret-" + unique + "-0123456789abcdef",
        },
        tmp / "server.log",
    )
    proc.start()
    try:
        for role in ROLES:
            create_user(fresh_db, f"{role}1", PASSWORD, role, display_name=f"{role.title()} One")
        yield WebServer(proc, site_id, prefix, fresh_db)
    finally:
        proc.stop()


@pytest.fixture
def publisher(web_server: WebServer, mqtt_host_port: tuple[str, int]) -> Iterator[Publisher]:
    pub = Publisher(*mqtt_host_port, prefix=web_server.prefix)
    try:
        yield pub
    finally:
        pub.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/bootstrap.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Session:
    """A browser context (own sessionStorage) with its page and the page's console errors."""

    page: Any
    errors: list[str]
    context: Any

    def wait(self, selector: str, timeout: float = 15_000, state: str = "visible") -> None:
        """wait_for_selector, failing with the page's console errors and notices for diagnosis."""
        from playwright.sync_api import TimeoutError as PwTimeout

        try:
            self.page.wait_for_selector(selector, timeout=timeout, state=state)
        except PwTimeout:
            notices = self.page.locator("#toast").inner_text()
            pytest.fail(f"{selector} not {state}; console errors: {self.errors}; notices: {notices!r}")

    def assert_no_errors(self, allowed: Callable[[str], bool] = lambda _m: False) -> None:
        bad = [e for e in self.errors if not allowed(e)]
        assert not bad, f"console errors in the page: {bad}"


@pytest.fixture
def open_session(browser: Any, web_server: WebServer) -> Iterator[Callable[..., Session]]:
    contexts: list[Any] = []

    def open_(role: str | None = None, lang: str = "vi", viewport: tuple[int, int] = (1280, 800)) -> Session:
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True
        )
        context.add_init_script(f"localStorage.setItem('citywatch.lang', '{lang}')")
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.goto(web_server.url + "/")
        page.wait_for_selector("#login-form", state="visible", timeout=15_000)
        if role is not None:
            login(page, f"{role}1", PASSWORD)
            page.wait_for_selector("#nav:not([hidden])", timeout=15_000)
        return Session(page, errors, context)

    yield open_
    for c in contexts:
        c.close()


def login(page: Any, username: str, password: str) -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")


def screenshot_colours(path: Path) -> dict[str, int]:
    """Pixel counts of the app's marker and chart colours in a screenshot (BGR thresholds)."""
    img = cv2.imread(str(path))
    assert img is not None, f"{path} is not an image"
    b, g, r = (img[..., i].astype(int) for i in range(3))
    return {
        "red": int(((r > 180) & (g < 110) & (b < 100)).sum()),  # new incident marker
        "green": int(((g > 110) & (r < 60) & (b < 100)).sum()),  # online camera
        "grey": int(((abs(r - 136) < 8) & (abs(g - 136) < 8) & (abs(b - 136) < 8)).sum()),  # unknown camera
        "blue": int(((b > 150) & (r < 60) & (g > 90) & (g < 140)).sum()),  # chart bars (#1f77b4)
        "distinct": len(np.unique(img.reshape(-1, 3)[::37], axis=0)),
    }
