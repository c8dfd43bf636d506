"""The append-only audit log: a keyed hash chain with an exported head.

Three layers, each against a different attacker:

* **Grants.** The server runs as a role with INSERT and SELECT only on ``audit_log`` (migration 0010;
  :mod:`server.db.roles`); the table's triggers refuse UPDATE, DELETE and TRUNCATE even to its owner
  (migration 0009), and only the owner could drop them.
* **HMAC chain.** Each row's ``hash`` is HMAC-SHA256, under ``CITYWATCH_AUDIT_KEY``, of the previous
  row's hash and the row's content (canonical JSON). The key lives in the server's settings, never in
  the database, so someone who can rewrite the table (the owner, a superuser, a stolen backup) cannot
  compute a chain that verifies. Without a key the chain is plain SHA-256 (``alg`` says which per row):
  editing or deleting a row in the middle is still found, but anyone who can write can re-chain.
* **Anchored head.** Every ``CITYWATCH_AUDIT_ANCHOR_S`` the head (last id, its hash, the row count) is
  appended to ``CITYWATCH_AUDIT_ANCHOR`` (a file the database cannot reach, MACed with the key), logged
  and exported as a metric. :func:`verify` checks that the anchored head is still there: deleting the
  newest rows, which leaves a valid shorter chain, is found, and the exporter refuses to anchor a head
  whose anchored predecessor is gone, so later rows do not paper over the cut. Rows written after the
  last export can still be cut unnoticed: the window is the export interval.

Appends are serialised by a transaction-level advisory lock, so concurrent writers (several server
instances) still form one chain. The key and the anchor file are per process, like the settings they
come from (:func:`configure`, called by ``create_app``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_LOCK_KEY = 0x63_77_61_75  # "cwau": the advisory lock that serialises appends
Alg = Literal["sha256", "hmac-sha256"]


@dataclass(frozen=True, slots=True)
class AuditConfig:
    key: bytes | None = None
    anchor_path: Path | None = None


_config = AuditConfig()


def configure(key: bytes | None, anchor_path: Path | None = None) -> None:
    """Set this process's chain key and anchor file (from the settings)."""
    global _config  # noqa: PLW0603 - one chain configuration per process, like its settings
    _config = AuditConfig(key, anchor_path)


def config() -> AuditConfig:
    return _config


def _digest(
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    ttype: str,
    tid: str,
    details: Any,
    key: bytes | None = None,
) -> str:
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
    message = f"{prev_hash}\n{body}".encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


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
    key = _config.key
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    cur = await conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
    row = await cur.fetchone()
    prev = row[0] if row else GENESIS
    # Microsecond precision, as PostgreSQL stores it, so the digest can be recomputed from the row.
    at = datetime.now(UTC)
    digest = _digest(prev, at, actor, action, target_type, target_id, details, key)
    alg: Alg = "sha256" if key is None else "hmac-sha256"
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, target_type, target_id, details, prev_hash, hash, alg) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (at, actor, action, target_type, target_id, Jsonb(details), prev, digest, alg),
    )


@dataclass(frozen=True, slots=True)
class ChainCheck:
    ok: bool
    rows: int
    first_bad_id: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Head:
    """The newest row of the chain (id 0 and the genesis hash when empty)."""

    id: int
    hash: str
    rows: int


async def head(conn: psycopg.AsyncConnection[Any]) -> Head:
    cur = await conn.execute(
        "SELECT id, hash, (SELECT count(*) FROM audit_log) FROM audit_log ORDER BY id DESC LIMIT 1"
    )
    row = await cur.fetchone()
    return Head(0, GENESIS, 0) if row is None else Head(int(row[0]), str(row[1]), int(row[2]))


async def verify(
    conn: psycopg.AsyncConnection[Any], key: bytes | None = None, anchor_path: Path | None = None
) -> ChainCheck:
    """Recompute the chain from the first row and check the anchored head; report the first problem.

    ``key`` and ``anchor_path`` default to this process's (:func:`configure`)."""
    key = key if key is not None else _config.key
    anchor_path = anchor_path if anchor_path is not None else _config.anchor_path
    prev = GENESIS
    rows = 0
    keyed_seen = False
    hashes: dict[int, str] = {}
    anchor = await asyncio.to_thread(read_anchor, anchor_path) if anchor_path is not None else None
    async with conn.transaction(), conn.cursor(name="audit_verify") as cur:
        await cur.execute(
            "SELECT id, at, actor, action, target_type, target_id, details, prev_hash, hash, alg "
            "FROM audit_log ORDER BY id"
        )
        async for rid, at, actor, action, ttype, tid, details, prev_hash, digest, alg in cur:
            rows += 1
            if prev_hash != prev:
                return ChainCheck(False, rows, rid, "prev_hash does not match the previous row's hash")
            if alg == "hmac-sha256":
                if key is None:
                    return ChainCheck(False, rows, rid, "the row is keyed but CITYWATCH_AUDIT_KEY is unset")
                keyed_seen = True
                row_key: bytes | None = key
            elif keyed_seen:
                return ChainCheck(False, rows, rid, "an unkeyed row follows keyed rows (re-chained?)")
            else:
                row_key = None
            if not hmac.compare_digest(
                _digest(prev, at, actor, action, ttype, tid, details, row_key), digest
            ):
                return ChainCheck(False, rows, rid, "the row's content does not match its hash")
            prev = digest
            if anchor is not None and rid == anchor.id:
                hashes[rid] = digest
    if anchor is not None:
        problem = _check_anchor(anchor, hashes.get(anchor.id), rows, key)
        if problem is not None:
            return ChainCheck(False, rows, anchor.id, problem)
    return ChainCheck(True, rows, None, None)


# --- the anchored head -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Anchor:
    at: str
    id: int
    hash: str
    rows: int
    mac: str | None


def _anchor_mac(key: bytes, at: str, rid: int, digest: str, rows: int) -> str:
    return hmac.new(key, f"audit-anchor\n{at}\n{rid}\n{digest}\n{rows}".encode(), hashlib.sha256).hexdigest()


def _check_anchor(anchor: Anchor, stored: str | None, rows: int, key: bytes | None) -> str | None:
    if key is not None and (
        anchor.mac is None
        or not hmac.compare_digest(
            anchor.mac, _anchor_mac(key, anchor.at, anchor.id, anchor.hash, anchor.rows)
        )
    ):
        return "the anchor file's last entry is not signed with CITYWATCH_AUDIT_KEY"
    if anchor.id == 0:
        return None
    if stored is None:
        return f"the anchored head (id {anchor.id}, {anchor.at}) is gone: rows were removed from the end"
    if stored != anchor.hash:
        return f"the anchored head (id {anchor.id}) has another hash now: the chain was rewritten"
    if rows < anchor.rows:
        return f"{anchor.rows} rows were anchored, {rows} remain"
    return None


def read_anchor(path: Path) -> Anchor | None:
    """The last entry of the anchor file (None when it does not exist yet)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            tail = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        d = json.loads(lines[-1])
        return Anchor(str(d["at"]), int(d["id"]), str(d["hash"]), int(d["rows"]), d.get("mac"))
    except (ValueError, KeyError, TypeError):
        # An unreadable last entry is itself a finding: report it as a head that cannot be found.
        return Anchor("unreadable", -1, "", 0, None)


def _append_anchor(path: Path, h: Head, key: bytes | None) -> str:
    at = datetime.now(UTC).isoformat(timespec="seconds")
    entry: dict[str, Any] = {"at": at, "id": h.id, "hash": h.hash, "rows": h.rows}
    if key is not None:
        entry["mac"] = _anchor_mac(key, at, h.id, h.hash, h.rows)
    line = json.dumps(entry, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    return line


class ChainCutError(Exception):
    """The anchored head is no longer in the table (or the anchor file was not written by us)."""


async def anchor_head(conn: psycopg.AsyncConnection[Any], h: Head, path: Path, key: bytes | None) -> bool:
    """Append ``h`` to the anchor file when it moved on from the last entry; True when written.

    Refuses (:class:`ChainCutError`) when the last anchored row is gone or changed: anchoring the
    new head would bless the cut, so the file keeps the evidence until someone looks."""
    last = await asyncio.to_thread(read_anchor, path)
    if last is not None:
        cur = await conn.execute("SELECT hash FROM audit_log WHERE id = %s", (last.id,))
        row = await cur.fetchone()
        stored = None if row is None else str(row[0])
        problem = _check_anchor(last, stored, h.rows, key) if last.id != 0 else None
        if problem is not None:
            raise ChainCutError(problem)
        if (last.id, last.hash) == (h.id, h.hash):
            return False
    await asyncio.to_thread(_append_anchor, path, h, key)
    log.info("audit head id=%d hash=%s rows=%d", h.id, h.hash, h.rows)
    return True


async def anchor_loop(
    pool: AsyncConnectionPool[Any], interval_s: float, on_head: Callable[[Head], None] | None = None
) -> None:
    """Export the head every ``interval_s`` until cancelled (then once more, so a clean stop leaves the
    final head anchored)."""
    reported: list[str] = []
    try:
        while True:
            await _export_once(pool, on_head, reported)
            await asyncio.sleep(interval_s)
    except asyncio.CancelledError:
        await _export_once(pool, on_head, reported)
        raise


async def _export_once(
    pool: AsyncConnectionPool[Any], on_head: Callable[[Head], None] | None, reported: list[str]
) -> None:
    try:
        async with pool.connection(timeout=10.0) as conn:
            h = await head(conn)
            if on_head is not None:
                on_head(h)  # exported even when it cannot be anchored: a falling row count alerts
            if _config.anchor_path is not None:
                await anchor_head(conn, h, _config.anchor_path, _config.key)
    except ChainCutError as exc:
        if reported != [str(exc)]:  # once per finding, not every tick
            reported[:] = [str(exc)]
            log.error("audit chain: %s; the head is not anchored until this is resolved", exc)
    except Exception:  # the loop outlives a database or disk hiccup; the next tick retries
        log.exception("audit head export failed")
