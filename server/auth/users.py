"""Users and API keys in the database: the functions the CLI, the demo and the API share.

The synchronous functions take a DSN (CLI, demo, tests); the API uses the async lookups.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

from server.auth.passwords import hash_password
from server.auth.roles import Role
from server.ingest.writer import LIVE_CHANNEL

API_KEY_PREFIX = "cwk_"

_SELECT_USERS: LiteralString = (
    "SELECT username, display_name, role, camera_groups, disabled, token_version, created_at, "
    "password_hash FROM users"
)


_SELECT_USERS_ORDERED: LiteralString = _SELECT_USERS + " ORDER BY username"
_SELECT_USER: LiteralString = _SELECT_USERS + " WHERE username = %s"


#: Shared by the CLI functions here and the admin API (server.api.auth).
INSERT_USER: LiteralString = (
    "INSERT INTO users (username, display_name, role, camera_groups, password_hash) "
    "VALUES (%s, %s, %s, %s, %s)"
)
INSERT_API_KEY: LiteralString = (
    "INSERT INTO api_keys (name, key_hash, key_prefix, role, camera_groups, created_by) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)


class UserError(Exception):
    """A user or key operation that cannot be done (exists already, unknown, bad value)."""


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: Role
    camera_groups: tuple[str, ...] | None
    disabled: bool
    token_version: int
    created_at: datetime
    password_hash: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        groups = row["camera_groups"]
        return cls(
            username=row["username"],
            display_name=row["display_name"],
            role=Role(row["role"]),
            camera_groups=None if groups is None else tuple(groups),
            disabled=row["disabled"],
            token_version=row["token_version"],
            created_at=row["created_at"],
            password_hash=row["password_hash"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name or self.username,
            "role": self.role.value,
            "camera_groups": None if self.camera_groups is None else list(self.camera_groups),
            "disabled": self.disabled,
        }


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def create_user(
    conninfo: str,
    username: str,
    password: str,
    role: str,
    camera_groups: list[str] | None = None,
    display_name: str | None = None,
) -> None:
    """Add a user; raises :class:`UserError` when the name is taken or a value is invalid."""
    try:
        role_ = Role(role)
    except ValueError as exc:
        raise UserError(f"role must be one of {', '.join(r.value for r in Role)}") from exc
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            conn.execute(
                INSERT_USER,
                (username, display_name or "", role_.value, camera_groups, hashed),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise UserError(f"user {username!r} exists already") from exc
        except psycopg.errors.CheckViolation as exc:
            raise UserError(f"username {username!r}: use 1-64 of letters, digits and _ . @ -") from exc


def list_users(conninfo: str) -> list[User]:
    with psycopg.connect(conninfo) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SELECT_USERS_ORDERED)
        return [User.from_row(r) for r in cur.fetchall()]


def auth_change_note(username: str) -> str:
    """The live-channel notification that makes ``username``'s open live sockets check again."""
    return json.dumps({"auth_change": username})


def set_disabled(conninfo: str, username: str, disabled: bool = True) -> None:
    """Disable (or enable) a user; disabling also invalidates every token already issued."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        cur = conn.execute(
            "UPDATE users SET disabled = %s, token_version = token_version + 1 WHERE username = %s",
            (disabled, username),
        )
        if cur.rowcount == 0:
            raise UserError(f"no user {username!r}")
        conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, auth_change_note(username)))


def set_password(conninfo: str, username: str, password: str) -> None:
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    with psycopg.connect(conninfo) as conn, conn.transaction():
        cur = conn.execute(
            "UPDATE users SET password_hash = %s, token_version = token_version + 1 WHERE username = %s",
            (hashed, username),
        )
        if cur.rowcount == 0:
            raise UserError(f"no user {username!r}")
        conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, auth_change_note(username)))


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def create_api_key(
    conninfo: str, name: str, role: str, created_by: str, camera_groups: list[str] | None = None
) -> str:
    """Create a named key for a machine (Prometheus, a dispatch system); returns the key, shown once."""
    try:
        role_ = Role(role)
    except ValueError as exc:
        raise UserError(f"role must be one of {', '.join(r.value for r in Role)}") from exc
    key = new_api_key()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            conn.execute(
                INSERT_API_KEY,
                (name, key_hash(key), key[:8], role_.value, camera_groups, created_by),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise UserError(f"an API key named {name!r} exists already") from exc
    return key


async def find_user(conn: psycopg.AsyncConnection[Any], username: str) -> User | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT_USER, (username,))
        row = await cur.fetchone()
    return None if row is None else User.from_row(row)
