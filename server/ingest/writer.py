"""The batch writer: one transaction per batch, idempotent, rollups and gap tracking included.

Everything of a batch (raw rows, plain-PostgreSQL rollups, sequence gaps, dead letters, live state and
the NOTIFY for the map) commits together or not at all; the caller acknowledges the MQTT messages only
after :meth:`BatchWriter.write` returns, so a crash at any point loses nothing and a redelivery finds
its message id in ``processed_messages`` and changes nothing.

Rows go in as arrays through ``unnest`` (one statement per table and batch): nearly as fast as COPY,
works with ``ON CONFLICT``/``RETURNING``, and avoids pipeline mode (which the PGlite build rejects).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from contract import (
    CountsMessage,
    EvidenceMessage,
    HealthFlag,
    HeartbeatMessage,
    IncidentEvent,
    IncidentMessage,
    StatusMessage,
)
from server.db.migrate import Backend
from server.db.timescale import refresh_late
from server.ingest import statements as sql
from server.ingest.gaps import Gap, track
from server.ingest.validate import DEAD_LETTER_PAYLOAD_MAX, Accepted, Rejected

log = logging.getLogger(__name__)

LIVE_CHANNEL = "citywatch_live"
#: Bit of each health flag in ``count_bins.health_mask`` (bit_or works in rollups and aggregates).
HEALTH_BITS: dict[HealthFlag, int] = {flag: 1 << i for i, flag in enumerate(HealthFlag)}

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(slots=True)
class WriteResult:
    stored: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    gap_messages: int = 0
    gap_filled: int = 0
    cameras: set[str] = field(default_factory=set)
    #: Start of the earliest count bin stored (TimescaleDB: what :func:`refresh_late` needs).
    earliest_bin: datetime | None = None


def _csv(flags: list[HealthFlag]) -> str:
    return ",".join(str(f) for f in flags)


class BatchWriter:
    """Writes validated batches; one instance per (sync) connection, used from one thread."""

    def __init__(
        self,
        backend: Backend,
        timezone: str,
        snapshot_dir: Path | None = None,
        *,
        refresh_late_bins: bool = True,
    ) -> None:
        """``refresh_late_bins`` (TimescaleDB): after each commit, refresh the continuous aggregates
        below whose watermark bins were stored (see :func:`refresh_late`); the ingest service turns it
        off and calls :meth:`refresh_late` itself, coalesced, so acknowledgements never wait for it."""
        self.backend = backend
        self.timezone = timezone
        self.snapshot_dir = snapshot_dir
        self.refresh_late_bins = refresh_late_bins and backend == "timescale"
        self._staged: set[int] = set()  # backends (by pid) whose staging table exists
        self._tz = ZoneInfo(timezone)

    def write(self, conn: Conn, batch: list[Accepted | Rejected]) -> WriteResult:
        """Store a batch in one transaction (committed on return); raise on any database error."""
        result = WriteResult()
        if self.backend == "plain" and conn.info.backend_pid not in self._staged:
            # Outside the batch's transaction, so a rolled-back batch cannot take the table with it.
            conn.execute(sql.STAGE_COUNTS_CREATE)
            self._staged.add(conn.info.backend_pid)
        with conn.transaction():
            fresh = self._dedupe(conn, [b for b in batch if isinstance(b, Accepted)], result)
            counts = [m for m in fresh if isinstance(m, CountsMessage)]
            incidents = [m for m in fresh if isinstance(m, IncidentMessage)]
            statuses = [m for m in fresh if isinstance(m, StatusMessage)]
            heartbeats = [m for m in fresh if isinstance(m, HeartbeatMessage)]
            self._counts(conn, counts, result)
            rejected = [b for b in batch if isinstance(b, Rejected)]
            incoming = {a.message.msg_id: a.incoming for a in batch if isinstance(a, Accepted)}
            forged: set[UUID] = set()
            for incident in sorted(incidents, key=lambda m: m.ts):
                owner = self._incident(conn, incident)
                if owner is not None:
                    # Another camera's incident: dead-lettered, nothing of it stored.
                    detail = (
                        f"incident_id: {incident.incident_id} belongs to camera {owner!r}, "
                        f"not {incident.camera_id!r}"
                    )
                    log.warning("dead letter: incident_owner (msg %s): %s", incident.msg_id, detail)
                    rejected.append(
                        Rejected(
                            incoming[incident.msg_id],
                            "incident_owner",
                            detail,
                            incident.camera_id,
                            str(incident.msg_id),
                        )
                    )
                    forged.add(incident.msg_id)
            if forged:
                fresh = [m for m in fresh if m.msg_id not in forged]
                incidents = [m for m in incidents if m.msg_id not in forged]
            self._status(conn, statuses)
            self._heartbeats(conn, heartbeats)
            for clip in (m for m in fresh if isinstance(m, EvidenceMessage)):
                self._clip(conn, clip)
            self._live(conn, counts, heartbeats)
            self._gaps(conn, [m for m in fresh if not isinstance(m, StatusMessage)], result)
            self._dead(conn, rejected, result)
            for m in fresh:
                result.stored[str(m.kind)] += 1
                result.cameras.add(m.camera_id)
            if result.cameras or incidents:
                # NOTIFY payloads are limited to 8,000 bytes: at most 80 camera ids (<= 64 characters
                # each) are named; beyond that "all" tells listeners to refresh every camera.
                cams = sorted(result.cameras)
                note = {
                    "cameras": cams if len(cams) <= 80 else [],
                    "all": len(cams) > 80,
                    "incidents": len(incidents),
                }
                conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, json.dumps(note)))
        if self.refresh_late_bins and result.earliest_bin is not None:
            self.refresh_late(conn, result.earliest_bin)
        return result

    def refresh_late(self, conn: Conn, earliest: datetime) -> int:
        """TimescaleDB: make the bins stored since ``earliest`` visible in every continuous aggregate."""
        return refresh_late(conn, earliest, self._tz) if self.backend == "timescale" else 0

    def _dedupe(self, conn: Conn, accepted: list[Accepted], result: WriteResult) -> list[Any]:
        unique: dict[UUID, Any] = {}
        for a in accepted:
            if a.message.msg_id in unique:
                result.duplicates += 1
            else:
                unique[a.message.msg_id] = a.message
        if not unique:
            return []
        msgs = list(unique.values())
        rows = conn.execute(
            sql.PROCESSED,
            ([m.msg_id for m in msgs], [str(m.kind) for m in msgs], [m.camera_id for m in msgs]),
        ).fetchall()
        new_ids = {r[0] for r in rows}
        result.duplicates += len(msgs) - len(new_ids)
        return [m for m in msgs if m.msg_id in new_ids]

    def _counts(self, conn: Conn, counts: list[CountsMessage], result: WriteResult) -> None:
        if not counts:
            return
        by_bin: dict[tuple[str, datetime], CountsMessage] = {}
        for m in counts:
            by_bin.setdefault((m.camera_id, m.bin_start), m)
        bins = list(by_bin.values())
        params: dict[str, Any] = {
            "cam": [m.camera_id for m in bins],
            "start": [m.bin_start for m in bins],
            "end": [m.bin_end for m in bins],
            "msg": [m.msg_id for m in bins],
            "seq": [m.seq for m in bins],
            "frames": [m.frames for m in bins],
            "fps": [m.fps for m in bins],
            "mask": [sum(HEALTH_BITS[f] for f in set(m.health)) for m in bins],
            "total": [sum(c.count for c in m.lines) for m in bins],
            "tz": self.timezone,
        }
        plain = self.backend == "plain"
        rows = conn.execute(sql.BINS_PLAIN if plain else sql.BINS_TIMESCALE, params).fetchall()
        inserted = {(r[0], r[1]) for r in rows}
        # A second message for a bin already stored (re-sent with a new id) changes nothing.
        result.duplicates += len(counts) - len(inserted)
        stored = [m for m in bins if (m.camera_id, m.bin_start) in inserted]
        if stored:
            result.earliest_bin = min(m.bin_start for m in stored)
        cells: dict[tuple[str, datetime, str, str, str], int] = {}
        for m in stored:
            for c in m.lines:
                # A cell repeated within one message is summed: counts has no unique index.
                key = (m.camera_id, m.bin_start, c.line_id, c.direction, c.cls)
                cells[key] = cells.get(key, 0) + c.count
        if cells:
            self._copy_counts(conn, cells)
        _insert_children(
            conn, sql.ZONES, [(m, z) for m in stored for z in m.zones],
            ("zone_id", "cls", "mean_count", "max_count", "entries", "mean_dwell_s"),
        )  # fmt: skip
        _insert_children(
            conn, sql.SPEEDS, [(m, s) for m in stored for s in m.speeds],
            ("line_id", "direction", "cls", "n", "mean_kmh", "p85_kmh"),
        )  # fmt: skip
        self._movements(conn, stored)

    def _copy_counts(self, conn: Conn, cells: dict[tuple[str, datetime, str, str, str], int]) -> None:
        """COPY the count cells (text format; see :mod:`server.ingest.statements`)."""
        text: dict[str, str] = {}  # each distinct name escaped once
        stamps: dict[datetime, str] = {}
        lines = []
        for (cam, start, line, direction, cls), n in cells.items():
            stamp = stamps.get(start)
            if stamp is None:
                stamp = stamps[start] = start.isoformat()
            parts = []
            for value in (cam, line, direction, cls):
                esc = text.get(value)
                if esc is None:
                    esc = text[value] = _copy_escape(value)
                parts.append(esc)
            lines.append(f"{parts[0]}\t{stamp}\t{parts[1]}\t{parts[2]}\t{parts[3]}\t{n}\n")
        data = "".join(lines).encode()
        if self.backend == "plain":
            with conn.cursor().copy(sql.COPY_STAGE_COUNTS) as copy:
                copy.write(data)
            conn.execute(sql.COUNTS_MERGE_PLAIN, {"tz": self.timezone})
        else:
            with conn.cursor().copy(sql.COPY_COUNTS) as copy:
                copy.write(data)

    def _movements(self, conn: Conn, stored: list[CountsMessage]) -> None:
        """Movements of the bins inserted just now (so a re-sent bin adds nothing), like counts."""
        cells: dict[tuple[str, datetime, str, str, str, str], int] = {}
        for m in stored:
            for mv in m.movements:
                # A cell repeated within one message is summed, as for counts.
                key = (m.camera_id, m.bin_start, mv.junction_id, mv.from_line, mv.to_line, mv.cls)
                cells[key] = cells.get(key, 0) + mv.count
        if not cells:
            return
        columns = [list(col) for col in zip(*cells, strict=True)]
        conn.execute(sql.MOVEMENTS, (*columns, list(cells.values())))

    def _clip(self, conn: Conn, m: EvidenceMessage) -> None:
        """Store an evidence clip beside the snapshots (a re-sent one of the same incident is ignored)."""
        try:
            data = base64.b64decode(m.data_b64, validate=True)
        except (binascii.Error, ValueError):
            log.warning(
                "incident %s (camera %s): clip is not valid base64, dropped", m.incident_id, m.camera_id
            )
            return
        path: str | None = None
        stored: bytes | None = data
        if self.snapshot_dir is not None:
            rel = Path(m.camera_id) / f"{m.incident_id}.webm"
            target = self.snapshot_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            path, stored = str(rel), None
        conn.execute(
            sql.CLIP,
            (
                m.incident_id, m.camera_id, m.content_type, m.codec, m.width, m.height, m.frames,
                m.duration_s, m.clip_start, len(data), path, stored,
            ),
        )  # fmt: skip

    def _snapshot(self, conn: Conn, m: IncidentMessage) -> int | None:
        if m.snapshot is None:
            return None
        try:
            data = base64.b64decode(m.snapshot.data_b64, validate=True)
        except (binascii.Error, ValueError):
            log.warning(
                "incident %s (camera %s): snapshot is not valid base64, dropped", m.incident_id, m.camera_id
            )
            return None
        path: str | None = None
        stored: bytes | None = data
        if self.snapshot_dir is not None:
            rel = Path(m.camera_id) / f"{m.incident_id}-{m.msg_id}.jpg"
            target = self.snapshot_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)  # the same name on a redelivery, so a crash leaves no orphans
            path, stored = str(rel), None
        row = conn.execute(
            sql.SNAPSHOT,
            (m.incident_id, m.snapshot.content_type, m.snapshot.width, m.snapshot.height, path, stored),
        ).fetchone()
        return int(row[0]) if row else None

    def _incident(self, conn: Conn, m: IncidentMessage) -> str | None:
        """Upsert the incident and store its event; or, when the incident id belongs to another camera,
        store nothing and return that camera (the caller dead-letters the message)."""
        row = conn.execute(sql.INCIDENT_OWNER, (m.incident_id,)).fetchone()
        if row is not None and row[0] != m.camera_id:
            return str(row[0])
        snapshot_id = self._snapshot(conn, m)
        closed = m.event is IncidentEvent.END
        cur = conn.execute(
            sql.INCIDENT,
            (
                m.incident_id,
                m.camera_id,
                str(m.type),
                str(m.severity),
                m.rule_id,
                m.zone_id,
                m.line_id,
                "closed" if closed else "open",
                m.started_at,
                m.ended_at,
                m.latitude,
                m.longitude,
                m.summary,
                m.classes,
                m.track_ids,
                Jsonb(m.details),
                snapshot_id,
                m.ts,
            ),
        )
        if cur.fetchone() is None:  # the row locked above cannot change owner; this is only a guard
            raise psycopg.errors.RaiseException(f"incident {m.incident_id}: owner changed concurrently")
        conn.execute(
            sql.INCIDENT_EVENT,
            (
                m.msg_id,
                m.incident_id,
                m.camera_id,
                str(m.event),
                m.ts,
                str(m.severity),
                m.summary,
                m.track_ids,
                Jsonb(m.details),
            ),
        )
        return None

    def _status(self, conn: Conn, statuses: list[StatusMessage]) -> None:
        if not statuses:
            return
        s = statuses
        conn.execute(
            sql.STATUS,
            (
                [m.camera_id for m in s],
                [m.ts for m in s],
                [m.msg_id for m in s],
                [m.edge_id for m in s],
                [m.seq for m in s],
                [str(m.state) for m in s],
                [m.reason for m in s],
                [_csv(m.health) for m in s],
            ),
        )
        latest: dict[str, StatusMessage] = {}
        for m in sorted(s, key=lambda m: m.ts):
            latest[m.camera_id] = m
        v = list(latest.values())
        conn.execute(
            sql.LIVE_STATUS,
            (
                [m.camera_id for m in v],
                [str(m.state) for m in v],
                [m.reason for m in v],
                [_csv(m.health) for m in v],
                [m.ts for m in v],
            ),
        )

    def _heartbeats(self, conn: Conn, beats: list[HeartbeatMessage]) -> None:
        if not beats:
            return
        b = beats
        conn.execute(
            sql.HEARTBEATS,
            (
                [m.camera_id for m in b],
                [m.ts for m in b],
                [m.msg_id for m in b],
                [m.edge_id for m in b],
                [m.seq for m in b],
                [m.fps for m in b],
                [m.source_fps for m in b],
                [m.inference_ms for m in b],
                [m.dropped_frames for m in b],
                [m.outbox_depth for m in b],
                [m.uptime_s for m in b],
                [m.reconnects for m in b],
                [_csv(m.health) for m in b],
                [m.version for m in b],
            ),
        )

    def _live(self, conn: Conn, counts: list[CountsMessage], beats: list[HeartbeatMessage]) -> None:
        cams: dict[str, dict[str, Any]] = {}
        latest: dict[str, CountsMessage] = {}
        for c in counts:
            entry = cams.setdefault(c.camera_id, {"seen": c.ts, "bin": None, "counts": None, "hb": None})
            entry["seen"] = max(entry["seen"], c.ts)
            if c.camera_id not in latest or c.bin_start > latest[c.camera_id].bin_start:
                latest[c.camera_id] = c
        for cam, c in latest.items():
            totals: Counter[str] = Counter()
            for line in c.lines:
                totals[f"{line.line_id}/{line.direction}/{line.cls}"] += line.count
            cams[cam]["bin"] = c.bin_start
            cams[cam]["counts"] = Jsonb(
                {
                    "bin_start": c.bin_start.isoformat(),
                    "bin_end": c.bin_end.isoformat(),
                    "fps": c.fps,
                    "health": [str(h) for h in c.health],
                    "counts": totals,
                }
            )
        for h in sorted(beats, key=lambda m: m.ts):
            entry = cams.setdefault(h.camera_id, {"seen": h.ts, "bin": None, "counts": None, "hb": None})
            entry["seen"] = max(entry["seen"], h.ts)
            entry["hb"] = Jsonb(
                h.model_dump(
                    mode="json",
                    include={
                        "ts",
                        "fps",
                        "source_fps",
                        "inference_ms",
                        "outbox_depth",
                        "health",
                        "version",
                        "config_version",  # the fleet page shows it (server/fleet/api.py)
                    },
                )
            )
        if not cams:
            return
        ids = sorted(cams)
        conn.execute(
            sql.LIVE_SEEN,
            (
                ids,
                [cams[c]["seen"] for c in ids],
                [cams[c]["bin"] for c in ids],
                [cams[c]["counts"] for c in ids],
                [cams[c]["hb"] for c in ids],
            ),
        )

    def _gaps(self, conn: Conn, data: list[Any], result: WriteResult) -> None:
        if not data:
            return
        seqs: dict[str, list[int]] = {}
        for m in data:
            seqs.setdefault(m.camera_id, []).append(m.seq)
        cams = sorted(seqs)
        conn.execute(sql.SEQ_LOCK, (cams,))
        max_seq = {r[0]: int(r[1]) for r in conn.execute(sql.SEQ_SELECT, (cams,))}
        gaps: dict[str, list[Gap]] = {c: [] for c in cams}
        for gid, cam, first, last, opened in conn.execute(sql.GAPS_SELECT, (cams,)):
            gaps[cam].append(Gap(int(first), int(last), opened, int(gid)))
        now = datetime.now(UTC)
        moved: dict[str, int] = {}
        for cam in cams:
            before = max_seq.get(cam, -1)
            update = track(None if before < 0 else before, gaps[cam], seqs[cam], now)
            result.gap_messages += update.missing_opened
            result.gap_filled += update.filled
            if update.missing_opened:
                log.warning("camera %s: %d message(s) missing (seq gap)", cam, update.missing_opened)
            if update.max_seq is not None and update.max_seq != before:
                moved[cam] = update.max_seq
            old = {g.id: g for g in gaps[cam]}
            kept = {g.id for g in update.gaps if g.id is not None}
            for gid in old.keys() - kept:
                conn.execute("UPDATE seq_gaps SET closed_at = now() WHERE id = %s", (gid,))
            for g in update.gaps:
                if g.id is None:
                    conn.execute(
                        "INSERT INTO seq_gaps (camera_id, first_seq, last_seq, opened_at) "
                        "VALUES (%s, %s, %s, %s)",
                        (cam, g.first, g.last, g.opened_at),
                    )
                elif old[g.id] != g:
                    conn.execute(
                        "UPDATE seq_gaps SET first_seq = %s, last_seq = %s WHERE id = %s",
                        (g.first, g.last, g.id),
                    )
        if moved:
            conn.execute(sql.SEQ_UPDATE, (list(moved), list(moved.values())))

    def _dead(self, conn: Conn, rejected: list[Rejected], result: WriteResult) -> None:
        if not rejected:
            return
        for r in rejected:
            result.dead[r.reason] += 1
        conn.execute(
            sql.DEAD,
            (
                [r.incoming.topic[:512] for r in rejected],
                [r.reason for r in rejected],
                [r.detail for r in rejected],
                [r.camera_id for r in rejected],
                [r.msg_id for r in rejected],
                [len(r.incoming.payload) for r in rejected],
                [r.incoming.payload[:DEAD_LETTER_PAYLOAD_MAX] for r in rejected],
            ),
        )


_COPY_SPECIAL = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_escape(value: str) -> str:
    """A value as COPY's text format needs it (backslash, tab, newline and CR escaped)."""
    return value.translate(_COPY_SPECIAL)


def _insert_children(
    conn: Conn, statement: LiteralString, rows: list[tuple[CountsMessage, Any]], fields: tuple[str, ...]
) -> None:
    """Insert the per-bin child rows (zones, speeds) of stored bins as one statement of arrays:
    camera ids, bin starts, then one array per field."""
    if rows:
        conn.execute(
            statement,
            (
                [m.camera_id for m, _ in rows],
                [m.bin_start for m, _ in rows],
                *([getattr(child, f) for _, child in rows] for f in fields),
            ),
        )
