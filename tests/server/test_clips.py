"""Evidence clips on the server: stored beside the snapshot (database or disk), a re-sent clip kept
once, served to roles with evidence rights, every look audited, linked from the incident detail."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from contract import EvidenceMessage, IncidentEvent
from server.app import create_app
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.server.helpers import incident, login
from tests.server.helpers import write_site as make_site
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE = "clips"
CAM = "cam-c1"
WEBM = b"\x1aE\xdf\xa3 not really a webm"


def evidence(seq: int, iid: uuid.UUID, data: bytes = WEBM) -> EvidenceMessage:
    return EvidenceMessage(
        msg_id=uuid.uuid4(), site_id=SITE, edge_id="edge-1", camera_id=CAM, seq=seq, ts=datetime.now(UTC),
        incident_id=iid, width=64, height=48, frames=10, clip_start=datetime.now(UTC), duration_s=1.25,
        data_b64=base64.b64encode(data).decode(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def env(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    site_path: Path = make_site(tmp_path_factory.mktemp("site"), SITE, "citywatch", [CAM])
    site = load_site(site_path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone, mode="off")  # the writer below is the plain one
    settings = Settings.from_env({"DATABASE_URL": fresh_db})
    with TestClient(create_app(settings, site, ingest=False)) as c:
        login(c, fresh_db)
        yield c, fresh_db


def test_clip_stored_served_audited_and_linked(env: tuple[TestClient, str]) -> None:
    client, dsn = env
    iid = uuid.uuid4()
    writer = BatchWriter("plain", "Asia/Ho_Chi_Minh")
    with psycopg.connect(dsn, autocommit=True) as conn:
        writer.write(conn, [acc(incident(SITE, CAM, 1, iid, IncidentEvent.START, datetime.now(UTC)))])
    assert client.get(f"/api/v1/incidents/{iid}")
    assert client.get(f"/api/v1/incidents/{iid}").json()["clip_url"] is None
    assert client.get(f"/api/v1/incidents/{iid}/clip").status_code == 404  # not arrived yet
    with psycopg.connect(dsn, autocommit=True) as conn:
        writer.write(conn, [acc(evidence(2, iid))])
        writer.write(conn, [acc(evidence(3, iid, b"a re-sent copy"))])  # at-least-once: kept once
    r = client.get(f"/api/v1/incidents/{iid}/clip")
    assert r.status_code == 200 and r.headers["content-type"] == "video/webm" and r.content == WEBM
    detail = client.get(f"/api/v1/incidents/{iid}").json()
    assert detail["clip_url"].endswith(f"/api/v1/incidents/{iid}/clip")
    assert any(a["action"] == "evidence_view" and a["details"] == {"what": "clip"} for a in detail["audit"])


def test_clip_on_disk(env: tuple[TestClient, str], tmp_path: Path) -> None:
    _, dsn = env
    iid = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        BatchWriter("plain", "Asia/Ho_Chi_Minh", tmp_path).write(conn, [acc(evidence(10, iid))])
        row = conn.execute(
            "SELECT path, data, bytes FROM incident_clips WHERE incident_id = %s", (iid,)
        ).fetchone()
    assert row is not None and row[1] is None and row[2] == len(WEBM)
    assert (tmp_path / row[0]).read_bytes() == WEBM
