"""The append-only audit log with a hash chain.

Each row's ``hash`` is SHA-256 over the previous row's hash and the row's own content (canonical JSON),
so editing, deleting or inserting a row anywhere breaks the chain from that row on; the table also
refuses UPDATE, DELETE and TRUNCATE (migration 0009). Appends are serialised by a transaction-level
advisory lock, so concurrent writers (several server instances) still form one chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

GENESIS = "0" * 64
_LOCK_KEY = 0x63_77_61_75  # "cwau": the advisory lock that serialises appends


def _digest(prev_hash: str, at: datetime, actor: str, action: str, ttype: str, tid: str, details: Any) -> str:
    body = json.dumps(
        {
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target_type": ttype,
            "target_id": tid,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


async def append(
    conn: psycopg.AsyncConnection[Any],
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry. Call inside the transaction that makes the change it records."""
    details = details or {}
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    cur = await conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
    row = await cur.fetchone()
    prev = row[0] if row else GENESIS
    # Microsecond precision, as PostgreSQL stores it, so the digest can be recomputed from the row.
    at = datetime.now(UTC)
    digest = _digest(prev, at, actor, action, target_type, target_id, details)
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, target_type, target_id, details, prev_hash, hash) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (at, actor, action, target_type, target_id, Jsonb(details), prev, digest),
    )


@dataclass(frozen=True, slots=True)
class ChainCheck:
    ok: bool
    rows: int
    first_bad_id: int | None
    reason: str | None


async def verify(conn: psycopg.AsyncConnection[Any]) -> ChainCheck:
    """Recompute the chain from the first row; report the first row that does not fit."""
    prev = GENESIS
    rows = 0
    async with conn.transaction(), conn.cursor(name="audit_verify") as cur:
        await cur.execute(
            "SELECT id, at, actor, action, target_type, target_id, details, prev_hash, hash "
            "FROM audit_log ORDER BY id"
        )
        async for rid, at, actor, action, ttype, tid, details, prev_hash, digest in cur:
            rows += 1
            if prev_hash != prev:
                return ChainCheck(False, rows, rid, "prev_hash does not match the previous row's hash")
            if _digest(prev, at, actor, action, ttype, tid, details) != digest:
                return ChainCheck(False, rows, rid, "the row's content does not match its hash")
            prev = digest
    return ChainCheck(True, rows, None, None)
