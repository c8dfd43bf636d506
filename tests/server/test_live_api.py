"""Live state: latest status and counts per camera, open incidents, and the WebSocket change stream."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from contract import IncidentEvent, StreamState
from server.app import create_app
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.server.helpers import counts, incident, status
from tests.server.helpers import write_site as make_site
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE = "live"
CAMS = ["cam-l1", "cam-l2"]


@pytest.fixture(scope="module")
def env(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    site_path: Path = make_site(tmp_path_factory.mktemp("site"), SITE, "citywatch", CAMS)
    site = load_site(site_path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone)
    settings = Settings.from_env({"DATABASE_URL": fresh_db})
    with TestClient(create_app(settings, site, ingest=False)) as c:
        yield c, fresh_db


def test_websocket_streams_committed_changes(env: tuple[TestClient, str]) -> None:
    client, dsn = env
    writer = BatchWriter("plain", "Asia/Ho_Chi_Minh")
    with client.websocket_connect("/api/v1/live/ws") as ws:
        first = ws.receive_json()
        assert first["type"] == "snapshot"
        assert {c["camera_id"] for c in first["cameras"]} == set(CAMS)
        with psycopg.connect(dsn, autocommit=True) as conn:
            writer.write(conn, [acc(status(SITE, "cam-l1", 0, StreamState.DEGRADED))])
        change = ws.receive_json()
        assert change["type"] == "change"
        assert [(c["camera_id"], c["state"]) for c in change["cameras"]] == [("cam-l1", "degraded")]
        iid = uuid.uuid4()
        with psycopg.connect(dsn, autocommit=True) as conn:
            writer.write(
                conn,
                [
                    acc(
                        counts(
                            SITE,
                            "cam-l2",
                            1,
                            datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1),
                        )
                    ),
                    acc(incident(SITE, "cam-l2", 2, iid, IncidentEvent.START, datetime.now(UTC))),
                ],
            )
        change = ws.receive_json()
        assert [c["camera_id"] for c in change["cameras"]] == ["cam-l2"]
        assert change["cameras"][0]["last_counts"]["counts"] == {"L1/north/car": 3, "L2/east/motorcycle": 5}
        assert [i["incident_id"] for i in change["incidents"]] == [str(iid)]


def test_rest_live_state(env: tuple[TestClient, str]) -> None:
    client, _ = env
    cams = {c["camera_id"]: c for c in client.get("/api/v1/live/cameras").json()["cameras"]}
    assert cams["cam-l1"]["state"] == "degraded"
    assert cams["cam-l2"]["state"] == "unknown"  # counts seen, but no status message yet
    assert cams["cam-l2"]["last_seen_at"] is not None
    open_ids = [i["camera_id"] for i in client.get("/api/v1/live/incidents").json()["incidents"]]
    assert open_ids == ["cam-l2"]
