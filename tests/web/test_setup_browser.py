"""Camera setup in a real headless Chromium, end to end: the real server (subprocess, ingest, fleet
bridge), the real broker and database, and a real edge worker with config push on (in this process;
its detector is the synthetic-clip fake at the detector boundary). An admin adds a camera (name,
position clicked on the map, a clip as source), sees a validation error next to its field, saves, draws
a counting line on the camera's live frame from the edge, saves again, and counts from that line arrive
in the database."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from citywatch.site import load_site
from edge.settings import EdgeSettings
from edge.worker import run_worker
from server.auth.users import create_user
from tests.edge.synthetic import CarDetector, car_frame, write_clip
from tests.mosquitto import free_port
from tests.server.server_proc import ServerProcess
from tests.web.conftest import ARTIFACTS, PASSWORD, login

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SITE = """
site: {{id: {site}, name: Setup, timezone: UTC, center: {{lat: 13.77, lon: 109.22}}, zoom: 15,
        bin_seconds: 2}}
mqtt_prefix: {prefix}
cameras:
  - id: cam-a
    name: Camera A
    group: north
    location: {{lat: 13.77, lon: 109.22}}
    source: {{kind: file, path: "{clip}", loop: true}}
"""


class Env:
    def __init__(self, url: str, dsn: str, clip: Path) -> None:
        self.url, self.dsn, self.clip = url, dsn, clip


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, fresh_db: str, mqtt_host_port: tuple[str, int]
) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("setup")
    unique = uuid.uuid4().hex[:8]
    # A car drives down the frame once every 4 s of the looping clip.
    clip = write_clip(tmp / "road.avi", [car_frame(0.1 + 0.008 * i) for i in range(100)], fps=25.0)
    path = tmp / "site.yaml"
    path.write_text(
        SITE.format(site=f"setup{unique}", prefix=f"cwsetup{unique}", clip=clip), encoding="utf-8"
    )
    host, port = mqtt_host_port
    edge_port = free_port()
    proc = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://{host}:{port}",
            "MQTT_CLIENT_ID": f"cw-setup-{unique}",
            "CITYWATCH_SITE": str(path),
            "CITYWATCH_TILE_URL": "",
            "CITYWATCH_TIMESCALE": "off",
            "CITYWATCH_EDGE_FRAME_URL": f"http://127.0.0.1:{edge_port}/cameras/{{camera_id}}/frame.jpg",
            "CITYWATCH_JWT_SECRET": "setup-secret-" + unique + "-0123456789abcdef",
        },
        tmp / "server.log",
    )
    proc.start()
    create_user(fresh_db, "admin1", PASSWORD, "admin", display_name="Admin One")
    settings = EdgeSettings.from_env(
        edge_id=f"edge-{unique}",
        outbox=str(tmp / "outbox"),
        metrics_port=edge_port,
        env={
            "MQTT_URL": f"mqtt://{host}:{port}",
            "CITYWATCH_DELIVERY": "broker",
            "CITYWATCH_HEARTBEAT_S": "1",
            "CITYWATCH_CONFIG_PUSH": "on",
        },
    )
    stop = threading.Event()
    worker = threading.Thread(
        target=run_worker,
        args=(load_site(path), settings, None, 300, lambda _c: CarDetector(), stop),
        daemon=True,
    )
    worker.start()
    try:
        yield Env(proc.url, fresh_db, clip)
    finally:
        stop.set()
        worker.join(30)
        proc.stop()


def _counted(dsn: str, cam: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(count), 0) FROM counts WHERE camera_id = %s", (cam,)
        ).fetchone()
    return int(row[0]) if row else 0


def _until(what: str, fn: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_add_a_camera_draw_a_line_and_see_its_counts(browser: Any, env: Env) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script("localStorage.setItem('citywatch.lang', 'en')")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    try:
        t0 = time.monotonic()
        page.goto(env.url + "/")
        login(page, "admin1", PASSWORD)
        page.wait_for_selector("#nav:not([hidden])", timeout=15_000)
        page.click("#nav a[data-page=setup]")
        page.wait_for_selector("#setup-form", timeout=15_000)

        page.fill("#cam-id", "cam-new")
        page.select_option("#cam-source-kind", "file")
        page.fill("#cam-source", str(env.clip))
        page.check("#cam-loop")
        page.fill("#cam-group", "north")
        box = page.locator("#setup-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
        assert page.input_value("#cam-lat") != ""
        page.click("#setup-save")  # no name yet: refused, the error next to the name field
        page.wait_for_selector(".field-error[data-for=name]:not(:empty)", timeout=10_000)

        page.fill("#cam-name", "New camera")
        page.click("#setup-save")
        page.wait_for_selector("#view-setup[data-saved='1']", timeout=10_000)

        # The edge starts the camera; its live frame comes through the server's frame proxy.
        def frame_loaded() -> bool:
            page.click("#setup-reload-frame")
            time.sleep(0.5)
            return bool(page.locator("#setup-frame[data-loaded='1']").count() == 1)

        _until("the new camera's live frame", frame_loaded, 30)
        overlay = page.locator("#setup-overlay").bounding_box()
        page.fill("#draw-id", "L1")
        page.fill("#dir-pos", "down")
        page.fill("#dir-neg", "up")
        for fx in (0.05, 0.95):
            page.mouse.click(overlay["x"] + overlay["width"] * fx, overlay["y"] + overlay["height"] * 0.5)
        page.click("#draw-add")
        page.wait_for_selector("#setup-lines li[data-line=L1]")
        page.click("#setup-save")
        page.wait_for_selector("#view-setup[data-saved='2']", timeout=10_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "camera-setup.png"), full_page=True)

        assert _until("counts of the new camera", lambda: _counted(env.dsn, "cam-new"), 60) > 0
        print(f"camera added, line drawn and first counts stored {time.monotonic() - t0:.1f} s after login")
        with psycopg.connect(env.dsn) as conn:
            audit = conn.execute(
                "SELECT action FROM audit_log WHERE target_id = 'cam-new' ORDER BY id"
            ).fetchall()
            directions = conn.execute(
                "SELECT DISTINCT direction FROM counts WHERE camera_id = 'cam-new'"
            ).fetchall()
        assert [a for (a,) in audit] == ["camera_add", "camera_change"]
        assert {d for (d,) in directions} == {"down"}
        assert not errors, errors
    finally:
        context.close()
