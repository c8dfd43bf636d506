"""The operations map in a real headless Chromium against the real server, broker and database:
cameras appear, a camera's status changes live, a new incident appears as a marker, the language
switches. A screenshot is kept as a test artifact and checked for content."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest

from contract import IncidentEvent, StreamState
from tests.conftest import ROOT
from tests.server.helpers import Publisher, incident, status, write_site
from tests.server.server_proc import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / ".artifacts"


@pytest.fixture
def server(
    tmp_path: Path, fresh_db: str, mqtt_host_port: tuple[str, int], unique: str
) -> Iterator[ServerProcess]:
    if not (ROOT / "server" / "web" / "static" / "vendor" / "leaflet" / "leaflet.js").exists():
        pytest.fail("Leaflet is not vendored: run scripts/build_web.sh (scripts/bootstrap.sh does)")
    host, port = mqtt_host_port
    site = write_site(tmp_path, f"map{unique}", f"cwmap{unique}", ["cam-a", "cam-b"])
    proc = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://{host}:{port}",
            "MQTT_CLIENT_ID": f"cw-map-{unique}",
            "CITYWATCH_SITE": str(site),
            "CITYWATCH_TILE_URL": "",  # no tiles here: the map must work on a plain background
        },
        tmp_path / "server.log",
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_map_shows_cameras_and_live_incidents(
    server: ServerProcess, mqtt_host_port: tuple[str, int], unique: str
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/bootstrap.sh installs it)")
    from playwright.sync_api import sync_playwright

    site_id = f"map{unique}"
    pub = Publisher(*mqtt_host_port, prefix=f"cwmap{unique}")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url + "/")
            page.wait_for_selector("[data-camera='cam-a']", state="attached", timeout=15_000)
            assert page.locator("#camera-list li").count() == 2
            page.wait_for_selector("#conn.on", timeout=15_000)

            pub.send(status(site_id, "cam-a", 0, StreamState.ONLINE)).wait_for_publish(5)
            page.wait_for_selector(
                "[data-camera='cam-a'][data-state='online']", state="attached", timeout=15_000
            )

            incident_id = uuid.uuid4()
            sent = time.monotonic()
            pub.send(incident(site_id, "cam-a", 1, incident_id, IncidentEvent.START, datetime.now(UTC)))
            page.wait_for_selector(
                f"path[data-incident='{incident_id}'], [data-incident='{incident_id}']",
                state="attached",
                timeout=15_000,
            )
            latency_ms = (time.monotonic() - sent) * 1000
            print(f"incident publish -> marker on the map: {latency_ms:.0f} ms")
            assert page.locator("#incident-count").inner_text() == "1"
            assert "Đi ngược chiều" in page.locator("#incident-list").inner_text()

            page.select_option("#lang", "en")
            assert "Wrong-way driving" in page.locator("#incident-list").inner_text()
            assert page.locator("aside h2").first.inner_text() == "Cameras"

            shot = ARTIFACTS / "map.png"
            page.screenshot(path=str(shot))
            img = cv2.imread(str(shot))
            assert img is not None
            b, g, r = img[..., 0].astype(int), img[..., 1].astype(int), img[..., 2].astype(int)
            reds = int(((r > 180) & (g < 110) & (b < 100)).sum())
            assert reds > 50, "the incident marker (red) is visible in the screenshot"
            greens = int(((g > 110) & (r < 60) & (b < 100)).sum())
            assert greens > 10, "the online camera's green marker is visible"
        finally:
            browser.close()
            pub.close()
