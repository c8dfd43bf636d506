"""The durable outbox: every message is on disk before it is sent, and leaves only when it is confirmed:
by the server (end-to-end, :mod:`contract.acks`; the default) or by the broker's PUBACK.

SQLite in WAL mode with ``synchronous=FULL``: a message handed to :meth:`Outbox.put` survives a crash
of the process or the machine. Sequence numbers are allocated in the same transaction as the insert,
so they are gap-free per camera across restarts.

Size cap policy (explicit and logged): when the outbox holds ``max_messages`` messages or
``max_bytes`` bytes, the oldest *heartbeats* are deleted first (a newer heartbeat supersedes them); if
that is not enough, the oldest message of any kind is deleted, logged as an error and counted in
``dropped``. The server sees the lost sequence numbers as a gap, never as zero traffic.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.emit import Build
from edge.errors import OutboxError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_camera ON outbox (camera_id, id);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS seqs (camera_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    camera_id: str
    kind: str
    topic: str
    payload: bytes
    seq: int | None = None  # the message's sequence number (None for rows of an older outbox)


class Outbox:
    """A thread-safe SQLite outbox shared by the cameras of one worker."""

    def __init__(self, path: str | Path, max_messages: int = 500_000, max_bytes: int = 1 << 30) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}
            if "seq" not in columns:  # an outbox written by an older version keeps its rows
                self._db.execute("ALTER TABLE outbox ADD COLUMN seq INTEGER")
            self._db.execute("CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (camera_id, seq)")
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._count, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
        ).fetchone()
        self.written = 0
        self.acked = 0
        self._last_cap_log = 0.0

    # -- producers ---------------------------------------------------------------------------------
    def put(self, camera_id: str, topic: str, build: Build) -> None:
        """Allocate the camera's next sequence number, build the message with it and store it."""
        kind = topic.rsplit("/", 1)[-1]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT seq FROM seqs WHERE camera_id = ?", (camera_id,)).fetchone()
                seq = (row[0] if row else 0) + 1
                payload = build(seq).model_dump_json(exclude_none=True).encode()
                self._db.execute(
                    "INSERT INTO seqs (camera_id, seq) VALUES (?, ?) "
                    "ON CONFLICT (camera_id) DO UPDATE SET seq = excluded.seq",
                    (camera_id, seq),
                )
                self._db.execute(
                    "INSERT INTO outbox (camera_id, kind, topic, payload, created, seq) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (camera_id, kind, topic, payload, time.time(), seq),
                )
                self._count += 1
                self._bytes += len(payload)
                self._enforce_cap()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise OutboxError(f"outbox write failed: {exc}") from exc
            except BaseException:
                self._db.execute("ROLLBACK")  # a message that cannot be built takes no sequence number
                raise
            self.written += 1

    def last_seq(self, camera_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM seqs WHERE camera_id = ?", (camera_id,)).fetchone()
        return int(row[0]) if row else 0

    # -- the publisher -----------------------------------------------------------------------------
    def peek(self, camera_id: str, after_id: int, limit: int) -> list[Row]:
        """The oldest unsent messages of a camera after ``after_id``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, camera_id, kind, topic, payload, seq FROM outbox WHERE camera_id = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (camera_id, after_id, limit),
            ).fetchall()
        return [Row(*r) for r in rows]

    def delete(self, ids: list[int]) -> None:
        """Remove messages the broker acknowledged."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            total = 0
            for i in ids:
                cur = self._db.execute("DELETE FROM outbox WHERE id = ? RETURNING length(payload)", (i,))
                found = cur.fetchone()
                if found is not None:
                    total += found[0]
                    self._count -= 1
                    self.acked += 1
            self._bytes -= total
            self._db.execute("COMMIT")

    def confirm(self, camera_id: str, seq_ranges: list[tuple[int, int]]) -> int:
        """Remove a camera's messages whose seq the server confirmed (inclusive ranges); how many."""
        removed = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            total = 0
            for first, last in seq_ranges:
                for (size,) in self._db.execute(
                    "DELETE FROM outbox WHERE camera_id = ? AND seq BETWEEN ? AND ? "
                    "RETURNING length(payload)",
                    (camera_id, first, last),
                ).fetchall():
                    total += size
                    removed += 1
            self._count -= removed
            self._bytes -= total
            self.acked += removed
            self._db.execute("COMMIT")
        return removed

    def oldest_age_s(self, camera_id: str) -> float:
        """Seconds since the oldest message of a camera still here was written (0 when none)."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(created) FROM outbox WHERE camera_id = ?", (camera_id,)
            ).fetchone()
        return 0.0 if row is None or row[0] is None else max(0.0, time.time() - float(row[0]))

    def depth(self, camera_id: str | None = None) -> int:
        if camera_id is None:
            return int(self._count)
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE camera_id = ?", (camera_id,)).fetchone()
        return int(row[0])

    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- cap ---------------------------------------------------------------------------------------
    def _over(self) -> bool:
        return bool(self._count > self.max_messages or self._bytes > self.max_bytes)

    def _enforce_cap(self) -> None:
        if not self._over():
            return
        heartbeats = 0
        while self._over():
            victim = self._db.execute(
                "SELECT id, length(payload) FROM outbox WHERE kind = 'heartbeat' ORDER BY id LIMIT 1"
            ).fetchone()
            kind = "heartbeat"
            if victim is None:
                victim = self._db.execute(
                    "SELECT id, length(payload), kind FROM outbox ORDER BY id LIMIT 1"
                ).fetchone()
                kind = victim[2]
                self._db.execute(
                    "INSERT INTO counters (name, value) VALUES ('dropped', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1"
                )
                log.error(
                    "outbox full (%d messages, %d bytes): dropped the oldest %s message (id %d)",
                    self._count,
                    self._bytes,
                    kind,
                    victim[0],
                )
            heartbeats += kind == "heartbeat"
            self._db.execute("DELETE FROM outbox WHERE id = ?", (victim[0],))
            self._count -= 1
            self._bytes -= victim[1]
        now = time.monotonic()
        if heartbeats and now - self._last_cap_log > 10.0:
            self._last_cap_log = now
            log.warning(
                "outbox at its cap (%d messages): dropping the oldest heartbeats to make room", self._count
            )
