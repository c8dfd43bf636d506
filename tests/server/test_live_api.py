"""Live state: latest status and counts per camera, open incidents, and the WebSocket change stream."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from contract import IncidentEvent, Snapshot, StreamState
from server.app import create_app
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.server.helpers import counts, incident, login, status
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
        login(c, fresh_db)
        yield c, fresh_db


def test_websocket_streams_committed_changes(env: tuple[TestClient, str]) -> None:
    client, dsn = env
    writer = BatchWriter("plain", "Asia/Ho_Chi_Minh")
    token = client.headers["Authorization"].split()[1]
    with client.websocket_connect("/api/v1/live/ws") as ws:
        ws.send_json({"type": "auth", "token": token})  # never in the URL (issue 12)
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


def test_snapshot_served_from_database(env: tuple[TestClient, str]) -> None:
    client, dsn = env
    jpeg = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"
    iid = uuid.uuid4()
    start = incident(SITE, "cam-l1", 50, iid, IncidentEvent.START, datetime.now(UTC))
    start = start.model_copy(
        update={"snapshot": Snapshot(width=4, height=3, data_b64=base64.b64encode(jpeg).decode())}
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        BatchWriter("plain", "Asia/Ho_Chi_Minh").write(conn, [acc(start)])
    r = client.get(f"/api/v1/incidents/{iid}/snapshot")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content == jpeg
    assert client.get(f"/api/v1/incidents/{uuid.uuid4()}/snapshot").status_code == 404


def test_snapshot_on_disk(env: tuple[TestClient, str], tmp_path: Path) -> None:
    _, dsn = env
    jpeg = b"\xff\xd8 disk \xff\xd9"
    iid = uuid.uuid4()
    start = incident(SITE, "cam-l2", 60, iid, IncidentEvent.START, datetime.now(UTC)).model_copy(
        update={"snapshot": Snapshot(width=4, height=3, data_b64=base64.b64encode(jpeg).decode())}
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        BatchWriter("plain", "Asia/Ho_Chi_Minh", tmp_path).write(conn, [acc(start)])
        row = conn.execute(
            "SELECT s.path, s.data FROM incidents i JOIN snapshots s ON s.id = i.snapshot_id "
            "WHERE i.incident_id = %s",
            (iid,),
        ).fetchone()
    assert row is not None and row[1] is None
    assert (tmp_path / row[0]).read_bytes() == jpeg
