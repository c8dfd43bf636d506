"""One evidence policy everywhere (issue 12, item 9): track ids, classes and snapshots are evidence and
are served only by the incident details and snapshot routes, each look audited. Live endpoints (REST
and the socket) and the incident queue carry no track ids or classes; alert e-mails carry a link to
the snapshot, never the image (tests/server/alerting/test_channels.py).

How main failed: ``GET /api/v1/live/incidents`` and the socket's snapshot returned every open
incident's track ids and classes with no audit row, while the details route audited the same data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contract import IncidentEvent
from server.ingest.writer import BatchWriter
from tests.server.helpers import incident, login
from tests.server.security.conftest import SITE, live
from tests.server.test_writer import acc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _audited(dsn: str, iid: uuid.UUID) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'evidence_view' AND target_id = %s", (str(iid),)
        ).fetchone()
    return int(row[0]) if row else 0


def test_track_data_only_through_the_audited_route(client: TestClient, sec_env: tuple[FastAPI, str]) -> None:
    _, dsn = sec_env
    iid = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        BatchWriter("plain", "Asia/Ho_Chi_Minh").write(
            conn, [acc(incident(SITE, "cam-a", 7, iid, IncidentEvent.START, datetime.now(UTC)))]
        )
    token = login(client, dsn, "police")

    def leaks(items: list[dict[str, object]]) -> list[str]:
        mine = [i for i in items if i["incident_id"] == str(iid)]
        assert mine, "the open incident is listed"
        return [k for i in mine for k in ("track_ids", "classes") if k in i]

    assert leaks(client.get("/api/v1/live/incidents").json()["incidents"]) == []
    assert leaks(client.get("/api/v1/incidents").json()["incidents"]) == []
    with live(client, token) as ws:
        assert leaks(ws.receive_json()["incidents"]) == []
    assert _audited(dsn, iid) == 0  # nothing above was a look at evidence ...
    detail = client.get(f"/api/v1/incidents/{iid}").json()
    assert detail["track_ids"] == [7] and detail["classes"] == ["motorcycle"]
    assert _audited(dsn, iid) == 1  # ... the details are, and are recorded
