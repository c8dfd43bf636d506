"""The fleet page in a real headless Chromium against the real server, broker and database: an edge's
announcement appears with its drift alert within seconds, the group filter, and the role split (the
operator looks, the admin may remove a camera)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from contract.fleet import EdgeAnnounce, HostFacts, ModelInfo, announce_topic, dump
from tests.server.helpers import Publisher, poll
from tests.web.conftest import ARTIFACTS, CAMERAS, Session, WebServer

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_fleet_page_shows_edges_cameras_and_drift(
    open_session: Callable[..., Session], web_server: WebServer, publisher: Publisher
) -> None:
    topic = announce_topic(web_server.site_id, "default", web_server.prefix)
    announce = EdgeAnnounce(
        site_id=web_server.site_id,
        group="default",
        edge_id="edge-browser",
        version="0.1.0",
        models=[ModelInfo(name="/models/yolo11n_int8_openvino_model", sha256="ab" * 32)],
        config_version=0,  # behind the desired version: drift
        config_error="cameras[0].lines[0].points: bad",
        rejected_version=7,
        cameras=list(CAMERAS),
        host=HostFacts(cores=4, gpu=None, free_disk_bytes=5 << 30),
        ts=datetime.now(UTC),
    )
    publisher.client.publish(topic, dump(announce), qos=1, retain=True).wait_for_publish(10)
    try:
        s = open_session("operator", lang="en")
        s.page.click("#nav a[data-page=fleet]")
        s.wait("#fleet-edges tr[data-group=default]")
        row = s.page.locator("#fleet-edges tr[data-group=default]")
        text = row.inner_text()
        assert "edge-browser" in text and "abababababab" in text and "4 CPU" in text
        assert "config v7 rejected" in text and "config drift: runs v0" in text
        for cam in CAMERAS:
            s.wait(f"#fleet-cameras tr[data-camera={cam}]")
        assert s.page.locator("#fleet-cameras button.remove").count() == 0  # operators only look
        s.page.select_option("#fleet-group", "default")
        assert s.page.locator("#fleet-cameras tbody tr").count() == len(CAMERAS)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        s.page.screenshot(path=str(ARTIFACTS / "fleet-operator.png"), full_page=True)
        s.assert_no_errors()

        # Two rollouts to the group: the admin rolls back to the first with one click (and a confirm).
        proc = web_server.proc
        for sha in ("1" * 64, "2" * 64):
            r = httpx.put(
                f"{proc.url}/api/v1/fleet/groups/default/model",
                json={"model": f"/models/m-{sha[0]}.onnx", "sha256": sha},
                headers=proc.headers,
            )
            assert r.status_code == 200, r.text
        admin = open_session("admin", lang="en")
        admin.page.click("#nav a[data-page=fleet]")
        admin.wait(f"#fleet-cameras tr[data-camera={CAMERAS[0]}] button.remove")
        assert admin.page.locator("#fleet-export").is_visible()
        admin.page.on("dialog", lambda d: d.accept())
        admin.wait("#fleet-edges tr[data-group=default] button.rollback")
        admin.page.click("#fleet-edges tr[data-group=default] button.rollback")
        rollouts = poll(
            lambda: httpx.get(f"{proc.url}/api/v1/fleet", headers=proc.headers).json()["rollouts"],
            lambda r: r["default"]["sha256"] == "1" * 64,
        )
        assert rollouts["default"]["sha256"] == "1" * 64
        assert rollouts["default"]["previous_sha256"] == "2" * 64
        admin.assert_no_errors()
    finally:
        publisher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
