"""The evidence purge: snapshots and clips past their period are deleted (rows and files) with one
audit entry each; incidents under investigation, of a type kept longer, or recent keep theirs."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from citywatch.site_safety import EvidenceRetention
from contract import IncidentEvent, IncidentType, Snapshot
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.retention import PurgeResult, purge_evidence
from tests.server.helpers import incident
from tests.server.test_clips import evidence
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
RETENTION = EvidenceRetention(default_days=30, per_type={"collision": 90}, investigation_days=365)


def _store(
    dsn: str, folder: Path, kind: IncidentType, days_ago: float, workflow: str = "resolved"
) -> uuid.UUID:
    iid = uuid.uuid4()
    msg = incident("clips", "cam-c1", 1, iid, IncidentEvent.START, NOW - timedelta(days=days_ago))
    msg = msg.model_copy(
        update={
            "type": kind,
            "snapshot": Snapshot(width=2, height=2, data_b64=base64.b64encode(b"jpeg").decode()),
        }
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        BatchWriter("plain", "UTC", folder).write(conn, [acc(msg), acc(evidence(2, iid))])
        conn.execute("UPDATE incidents SET workflow_state = %s WHERE incident_id = %s", (workflow, iid))
    return iid


def test_purge_keeps_what_it_must_and_audits_what_it_deletes(fresh_db: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, "UTC", mode="off")
    old = _store(fresh_db, tmp_path, IncidentType.WRONG_WAY, 40)
    recent = _store(fresh_db, tmp_path, IncidentType.WRONG_WAY, 10)
    investigated = _store(fresh_db, tmp_path, IncidentType.WRONG_WAY, 40, workflow="assigned")
    crash = _store(fresh_db, tmp_path, IncidentType.COLLISION, 40)
    old_crash = _store(fresh_db, tmp_path, IncidentType.COLLISION, 100)
    assert len(list(tmp_path.rglob("*.webm"))) == 5 and len(list(tmp_path.rglob("*.jpg"))) == 5

    async def run(dry: bool) -> PurgeResult:
        async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
            return await purge_evidence(conn, RETENTION, NOW, tmp_path, dry_run=dry)

    dry = asyncio.run(run(True))
    assert dry.incidents == 2 and dry.files == 0
    assert len(list(tmp_path.rglob("*.webm"))) == 5
    done = asyncio.run(run(False))
    assert (done.incidents, done.snapshots, done.clips, done.files) == (2, 2, 2, 4)
    assert done.by_type == {"wrong_way": 1, "collision": 1}
    with psycopg.connect(fresh_db) as conn:
        kept = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT i.incident_id, i.snapshot_id IS NOT NULL, c.incident_id IS NOT NULL FROM incidents i "
                "LEFT JOIN incident_clips c USING (incident_id)"
            ).fetchall()
        }
        audits = conn.execute(
            "SELECT target_id, actor, details FROM audit_log WHERE action = 'evidence_purge'"
        ).fetchall()
    assert kept[old] == kept[old_crash] == (False, False)
    assert kept[recent] == kept[investigated] == kept[crash] == (True, True)
    assert {a[0] for a in audits} == {str(old), str(old_crash)}
    assert all(a[1] == "system:retention" and a[2]["what"] == ["snapshot", "clip"] for a in audits)
    assert len(list(tmp_path.rglob("*.webm"))) == 3
    again = asyncio.run(run(False))
    assert again.incidents == 0
