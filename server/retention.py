"""The evidence purge job: delete snapshots and clips past their retention period, audited.

Run by ``citywatch server purge-evidence`` (from cron or a systemd timer). Each incident whose evidence
is deleted gets one audit entry (``evidence_purge``) in the same transaction as the deletion, naming
what was deleted, its age and the period that applied; files under the snapshot folder are removed
after the commit (a crash in between leaves an orphan file, never a row pointing at nothing).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString

import psycopg

from citywatch.site_safety import EvidenceRetention
from server.auth import audit

log = logging.getLogger(__name__)
ACTOR = "system:retention"

_CANDIDATES: LiteralString = """
SELECT i.incident_id, i.type, i.workflow_state, i.started_at, s.id, s.path, c.path,
       c.incident_id IS NOT NULL
FROM incidents i
LEFT JOIN snapshots s ON s.id = i.snapshot_id
LEFT JOIN incident_clips c ON c.incident_id = i.incident_id
WHERE i.evidence_purged_at IS NULL AND (s.id IS NOT NULL OR c.incident_id IS NOT NULL)
  AND i.started_at < %s
ORDER BY i.started_at
"""


@dataclass(slots=True)
class PurgeResult:
    incidents: int = 0
    snapshots: int = 0
    clips: int = 0
    files: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


async def purge_evidence(
    conn: psycopg.AsyncConnection[Any],
    retention: EvidenceRetention,
    now: datetime,
    snapshot_dir: Path | None = None,
    dry_run: bool = False,
) -> PurgeResult:
    """Delete the evidence of every incident past its period (see :class:`EvidenceRetention`)."""
    result = PurgeResult()
    shortest = min([retention.default_days, *retention.per_type.values()])
    files: list[str] = []
    async with conn.transaction():
        cur = await conn.execute(_CANDIDATES, (now - timedelta(days=shortest),))
        rows = await cur.fetchall()
        for incident_id, kind, workflow, started_at, snap_id, snap_path, clip_path, has_clip in rows:
            days = retention.days_for(kind, workflow)
            age = (now - started_at).total_seconds() / 86400
            if age < days:
                continue
            result.incidents += 1
            result.by_type[kind] = result.by_type.get(kind, 0) + 1
            what = [w for w, present in (("snapshot", snap_id is not None), ("clip", has_clip)) if present]
            result.snapshots += snap_id is not None
            result.clips += bool(has_clip)
            if dry_run:
                continue
            await conn.execute(
                "UPDATE incidents SET snapshot_id = NULL, evidence_purged_at = %s WHERE incident_id = %s",
                (now, incident_id),
            )
            if snap_id is not None:
                await conn.execute("DELETE FROM snapshots WHERE id = %s", (snap_id,))
            await conn.execute("DELETE FROM incident_clips WHERE incident_id = %s", (incident_id,))
            files += [p for p in (snap_path, clip_path) if p]
            await audit.append(
                conn,
                ACTOR,
                "evidence_purge",
                "incident",
                str(incident_id),
                {"what": what, "age_days": round(age, 1), "retention_days": days, "workflow": workflow},
            )
    if snapshot_dir is not None and files:
        result.files = await asyncio.to_thread(_remove, snapshot_dir, files)
    log.info(
        "evidence purge%s: %d incident(s), %d snapshot(s), %d clip(s), %d file(s)",
        " (dry run)" if dry_run else "",
        result.incidents,
        result.snapshots,
        result.clips,
        result.files,
    )
    return result


def _remove(folder: Path, files: list[str]) -> int:
    base = folder.resolve()
    removed = 0
    for rel in files:
        target = (base / rel).resolve()
        if target.is_relative_to(base) and target.is_file():
            target.unlink()
            removed += 1
    return removed
