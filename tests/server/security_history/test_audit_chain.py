"""The audit chain cannot be cut at its end, nor re-chained without the key.

On main the server connected as the owner (here: the superuser), the chain was plain SHA-256 and
nothing recorded its head: deleting the newest rows left a valid shorter chain and ``verify`` said ok;
re-chaining every row with SHA-256 also verified. There was no application role at all.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from contract import IncidentEvent
from server.auth import audit
from server.db.migrate import Migration, load_migrations, may_migrate, pending
from server.db.roles import APP_ROLE, privilege_problems
from server.ingest.writer import BatchWriter
from server.main import prepare
from server.settings import Settings
from tests.server.helpers import counts, incident, poll
from tests.server.history_data import START
from tests.server.security_history.common import Headers, serve, write_site
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE = "auditsite"
KEY = "k" * 40
SuperConn = psycopg.Connection[tuple[Any, ...]]


def _as_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Setup:
    def __init__(self, client: TestClient, headers: dict[str, Headers], owner: str, app: str, anchor: Path):
        self.client, self.headers, self.owner, self.app, self.anchor = client, headers, owner, app, anchor

    def verify(self) -> dict[str, Any]:
        r = self.client.get("/api/v1/audit/verify", headers=self.headers["admin"])
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def head_id(self) -> int:
        with psycopg.connect(self.owner) as conn:
            row = conn.execute("SELECT max(id) FROM audit_log").fetchone()
        assert row is not None
        return int(row[0] or 0)

    def wait_anchored(self) -> audit.Anchor:
        """Until the periodic export has written the current head."""
        want = self.head_id()
        got = poll(lambda: audit.read_anchor(self.anchor), lambda a: a is not None and a.id == want, 10.0)
        assert got is not None and got.id == want, (got, want)
        return got

    def audited_action(self) -> None:
        """An admin action that appends to the audit log (an API key: one row)."""
        r = self.client.post(
            "/api/v1/api-keys",
            json={"name": f"k-{uuid.uuid4().hex[:8]}", "role": "planner"},
            headers=self.headers["admin"],
        )
        assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module")
def setup(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("audit")
    site_path = write_site(folder, SITE, ["cam-a1"])
    app_user = f"cw_app_{uuid.uuid4().hex[:10]}"
    app_dsn = _as_user(fresh_db, app_user, "app-secret-pw")
    anchor = folder / "anchor" / "audit-head.jsonl"
    env = {
        "CITYWATCH_MIGRATE_DATABASE_URL": fresh_db,
        "CITYWATCH_AUDIT_KEY": KEY,
        "CITYWATCH_AUDIT_ANCHOR": str(anchor),
        "CITYWATCH_AUDIT_ANCHOR_S": "0.1",
        "CITYWATCH_TIMESCALE": "off",
    }
    settings = Settings.from_env({"DATABASE_URL": app_dsn, "CITYWATCH_SITE": str(site_path), **env})
    # As `citywatch server run` does: migrate as the owner, provision the server's own role.
    prepare(settings, load_site(site_path))
    try:
        with serve(app_dsn, site_path, env, roles=("admin", "police", "planner")) as (client, headers):
            yield Setup(client, headers, fresh_db, app_dsn, anchor)
    finally:
        audit.configure(None, None)
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{app_user}"'.encode())  # test-only SQL: a generated name
            conn.execute(f'DROP ROLE IF EXISTS "{app_user}"'.encode())


REFUSED = [
    "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
    "UPDATE audit_log SET actor = 'nobody'",
    "TRUNCATE audit_log",
    "DROP TRIGGER audit_log_no_change ON audit_log",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
    "DROP TABLE audit_log",
    "SET session_replication_role = replica",  # would silence the triggers
    "ALTER TABLE audit_log OWNER TO CURRENT_USER",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_app_role_cannot_cut_the_chain(setup: Setup, statement: str) -> None:
    with psycopg.connect(setup.app, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement.encode())  # test-only SQL, constant
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == before


def test_the_server_runs_as_the_restricted_role(setup: Setup) -> None:
    with psycopg.connect(setup.app, autocommit=True) as conn:
        assert privilege_problems(conn) == []
        row = conn.execute(
            "SELECT pg_has_role(current_user, %s, 'USAGE'), current_user", (APP_ROLE,)
        ).fetchone()
        assert row is not None and row[0] and row[1].startswith("cw_app_")
    with psycopg.connect(setup.owner, autocommit=True) as conn:
        assert "is a superuser" in privilege_problems(conn)  # the check can fail
    # Ingest, logins, an admin action, the police workflow and history work as that role.
    iid = uuid.uuid4()
    with psycopg.connect(setup.app, autocommit=True) as conn:
        BatchWriter("plain", "Asia/Ho_Chi_Minh").write(
            conn,
            [
                acc(counts(SITE, "cam-a1", 1, START, bin_s=300)),
                acc(incident(SITE, "cam-a1", 2, iid, IncidentEvent.START, START)),
            ],
        )
    setup.audited_action()
    r = setup.client.post(f"/api/v1/incidents/{iid}/acknowledge", json={}, headers=setup.headers["police"])
    assert r.status_code == 200, r.text
    r = setup.client.get(
        "/api/v1/history/volume",
        params={"start": START.isoformat(), "end": (START + timedelta(days=1)).isoformat(), "bin": "1d"},
        headers=setup.headers["planner"],
    )
    assert r.status_code == 200, r.text
    assert sum(row["count"] for row in r.json()["rows"]) == 8
    with psycopg.connect(setup.owner) as conn:
        algs = {a for (a,) in conn.execute("SELECT DISTINCT alg FROM audit_log")}
    assert algs == {"hmac-sha256"}
    anchored = setup.wait_anchored()
    assert anchored.mac is not None
    assert setup.verify() == {"ok": True, "rows": anchored.rows, "first_bad_id": None, "reason": None}
    metrics = setup.client.get("/metrics", headers=setup.headers["admin"]).text
    assert f"citywatch_audit_head_id {anchored.id}" in metrics


def test_the_server_starts_with_only_its_restricted_dsn(setup: Setup, tmp_path: Path) -> None:
    """Migrations as a separate job: the server, given only its own DSN, checks and does not migrate."""
    site_path = write_site(tmp_path, SITE, ["cam-a1"])
    only_app = Settings.from_env(
        {"DATABASE_URL": setup.app, "CITYWATCH_SITE": str(site_path), "CITYWATCH_TIMESCALE": "off"}
    )
    assert prepare(only_app, load_site(site_path)).applied == []
    future = Migration(9999, "future", "CREATE TABLE later (id int)", None)
    with psycopg.connect(setup.app, autocommit=True) as conn:
        assert not may_migrate(conn)
        assert pending(conn) == []
        assert pending(conn, [*load_migrations(), future]) == ["9999_future"]


def _owner_tamper(owner: str, statements: list[str]) -> None:
    """What an attacker with the owner's (or a superuser's) rights does: triggers off, change, on."""
    with psycopg.connect(owner) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        for s in statements:
            conn.execute(s.encode())  # test-only SQL
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")


async def _verify_without_anchor(dsn: str) -> audit.ChainCheck:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await audit.verify(conn, key=KEY.encode(), anchor_path=Path("/nonexistent/anchor"))


def _rechain(owner: str, key: bytes | None) -> None:
    """Rewrite every row's actor and re-chain them, keyed with ``key`` (a guess) or plain SHA-256."""
    with psycopg.connect(owner) as conn:
        rows = conn.execute(
            "SELECT id, at, actor, action, target_type, target_id, details FROM audit_log ORDER BY id"
        ).fetchall()
        statements, prev = [], audit.GENESIS
        for rid, at, _actor, action, ttype, tid, details in rows:
            digest = audit._digest(prev, at, "someone-else", action, ttype, tid, details, key)
            alg = "sha256" if key is None else "hmac-sha256"
            statements.append(
                f"UPDATE audit_log SET actor = 'someone-else', prev_hash = '{prev}', hash = '{digest}', "
                f"alg = '{alg}' WHERE id = {rid}"
            )
            prev = digest
    _owner_tamper(owner, statements)


@pytest.mark.parametrize("guess", [None, b"g" * 40], ids=["plain-sha256", "wrong-key"])
def test_rechaining_without_the_key_is_detected(setup: Setup, guess: bytes | None) -> None:
    setup.audited_action()
    setup.wait_anchored()
    assert setup.verify()["ok"] is True
    with psycopg.connect(setup.owner) as conn:
        saved = conn.execute("SELECT id, actor, prev_hash, hash, alg FROM audit_log ORDER BY id").fetchall()
    _rechain(setup.owner, guess)
    body = setup.verify()
    assert body["ok"] is False
    if guess is not None:
        # A wrong key fails on the first row, anchor or not.
        assert (body["first_bad_id"], body["reason"]) == (1, "the row's content does not match its hash")
    else:
        # A consistent SHA-256 chain: caught by the anchored head's hash.
        assert "rewritten" in body["reason"]
    # Restore (as from a backup) for the next case.
    _owner_tamper(
        setup.owner,
        [
            f"UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{digest}', alg = '{alg}' "
            f"WHERE id = {rid}"
            for rid, actor, prev, digest, alg in saved
        ],
    )
    assert setup.verify()["ok"] is True


# Last: it leaves the chain cut for good (as it should).
def test_deleting_the_newest_rows_is_detected(setup: Setup) -> None:
    setup.audited_action()
    setup.audited_action()
    anchored = setup.wait_anchored()
    # The attacker cuts the last two rows.
    _owner_tamper(setup.owner, [f"DELETE FROM audit_log WHERE id > {anchored.id - 2}"])
    # The shorter chain is valid in itself; only the anchor tells.
    assert asyncio.run(_verify_without_anchor(setup.owner)).ok
    body = setup.verify()
    assert body["ok"] is False and body["first_bad_id"] == anchored.id
    assert "removed from the end" in body["reason"]

    # Rows written after the cut do not paper over it: the exporter will not anchor past it.
    setup.audited_action()
    with pytest.raises(audit.ChainCutError, match="removed from the end"):
        asyncio.run(_anchor_now(setup))
    assert audit.read_anchor(setup.anchor) == anchored
    assert "removed from the end" in setup.verify()["reason"]

    # Writing the cut head into the anchor file needs the key too.
    entry = {"at": "2026-12-03T00:00:00+00:00", "id": anchored.id - 2, "hash": "0" * 64, "rows": 1}
    with setup.anchor.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    assert "not signed" in setup.verify()["reason"]


async def _anchor_now(setup: Setup) -> None:
    async with await psycopg.AsyncConnection.connect(setup.app, autocommit=True) as conn:
        await audit.anchor_head(conn, await audit.head(conn), setup.anchor, KEY.encode())
