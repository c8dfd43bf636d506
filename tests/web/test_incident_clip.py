"""The clip of a critical incident, as the edge encodes it, travels edge -> MQTT -> server and plays in
the police console's incident panel in headless Chromium: the <video> element loads and has a duration,
and the look is audited."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contract import IncidentEvent
from tests.edge.test_evidence import clip_of_a_crash
from tests.server.helpers import Publisher, incident
from tests.web.conftest import Session, WebServer

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_clip_plays_in_the_console_incident_panel(
    web_server: WebServer, publisher: Publisher, open_session: Callable[..., Session], tmp_path: Path
) -> None:
    clip, _, _ = clip_of_a_crash(tmp_path)
    site_id, iid = web_server.site_id, uuid.uuid4()
    police = open_session("police")
    page = police.page
    page.wait_for_selector("#conn.on", timeout=15_000)
    publisher.send(incident(site_id, "cam-a", 1, iid, IncidentEvent.START, datetime.now(UTC)))
    evidence = clip.model_copy(
        update={
            "msg_id": uuid.uuid4(),
            "site_id": site_id,
            "camera_id": "cam-a",
            "seq": 2,
            "incident_id": iid,
        }
    )
    publisher.send(evidence).wait_for_publish(5)
    page.click("#nav a[data-page='console']")
    row = page.locator(f"#queue tr[data-incident='{iid}']")
    row.wait_for(timeout=10_000)
    # The clip lands a moment after the incident; the panel shows it once the server has it.
    for _ in range(20):
        row.click()
        if page.locator("#console-detail video.clip").count():
            break
        page.wait_for_timeout(500)
    # Polled with page.evaluate: wait_for_function evaluates with eval, which the page's CSP refuses.
    probe = """() => {
        const v = document.querySelector('#console-detail video.clip');
        return v && v.readyState >= 1 && v.videoWidth > 0 && {d: v.duration, w: v.videoWidth, e: v.error};
    }"""
    deadline = time.monotonic() + 15
    while not (info := page.evaluate(probe)):
        assert time.monotonic() < deadline, "the clip did not load in the incident panel"
        time.sleep(0.1)
    assert info["e"] is None and info["w"] == clip.width
    assert abs(info["d"] - clip.duration_s) < 1.0
    police.assert_no_errors()
