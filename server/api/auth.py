"""Login (OAuth2 password flow -> JWT), who am I, and the admin's users, API keys and audit check."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import PoolDep, SettingsDep
from server.auth import audit, tokens
from server.auth.deps import Principal, PrincipalDep, require
from server.auth.passwords import MIN_LENGTH, hash_password, verify_password
from server.auth.ratelimit import LoginLimiter, Reservation
from server.auth.roles import Perm, Role
from server.auth.users import (
    API_KEY_PREFIX,
    INSERT_API_KEY,
    INSERT_USER,
    auth_change_note,
    find_user,
    key_hash,
    new_api_key,
)
from server.ingest.writer import LIVE_CHANNEL

router = APIRouter(prefix="/api/v1", tags=["auth"])

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
USERNAME_RE = re.compile(USERNAME_PATTERN)
GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
GroupList = list[Annotated[str, Field(pattern=GROUP_PATTERN)]]
WRONG = "wrong username or password"  # one message for unknown user, wrong password, disabled user


class UserOut(BaseModel):
    username: str
    display_name: str
    role: Role
    camera_groups: list[str] | None
    disabled: bool = False


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    user: UserOut


def _limiter(request: Request) -> LoginLimiter:
    limiter: LoginLimiter = request.app.state.login_limiter
    return limiter


@router.post(
    "/auth/token",
    summary="Log in (OAuth2 password flow); returns a bearer token",
    responses={
        401: {"description": WRONG},
        429: {"description": "too many failed attempts from this address"},
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
) -> TokenOut:
    limiter = _limiter(request)
    address = request.client.host if request.client else "?"
    # Reserved before the password is checked: parallel requests cannot each get a guess.
    res = limiter.reserve(form.username, address)
    if not isinstance(res, Reservation):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed attempts from your address; try again later",
            headers={"Retry-After": str(max(1, math.ceil(res)))},
        )
    user, ok = None, False
    try:
        if res.delay_s > 0:  # failures on this username slow every attempt on it down, lock none out
            await asyncio.sleep(res.delay_s)
        if USERNAME_RE.fullmatch(form.username):  # anything else cannot be a user (and never reaches SQL)
            async with pool.connection() as conn:
                user = await find_user(conn, form.username)
        # Argon2 is slow on purpose: off the event loop. Unknown users cost the same (dummy hash).
        verified = await asyncio.to_thread(
            verify_password, user.password_hash if user else None, form.password
        )
        ok = verified and user is not None and not user.disabled
    finally:
        limiter.settle(res, ok=ok)  # a success gives the slot back; anything else is a failure
    if not ok or user is None:
        async with pool.connection() as conn, conn.transaction():
            await audit.append(
                conn, form.username[:64], "login_failed", "user", form.username[:64], {"ip": address}
            )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG, headers={"WWW-Authenticate": "Bearer"})
    token = tokens.issue(
        request.app.state.jwt_secret, user.username, user.token_version, settings.token_ttl_s
    )
    async with pool.connection() as conn, conn.transaction():
        await audit.append(conn, user.username, "login", "user", user.username, {"ip": address})
    return TokenOut(
        access_token=token,
        expires_in=settings.token_ttl_s,
        user=UserOut(
            username=user.username,
            display_name=user.display_name or user.username,
            role=user.role,
            camera_groups=None if user.camera_groups is None else list(user.camera_groups),
        ),
    )


@router.get("/auth/me", summary="The caller: name, role and camera groups")
async def me(principal: PrincipalDep) -> UserOut:
    return UserOut(
        username=principal.name,
        display_name=principal.display_name or principal.name,
        role=principal.role,
        camera_groups=None if principal.camera_groups is None else list(principal.camera_groups),
    )


# --- admin: users ------------------------------------------------------------------------------
AdminDep = Annotated[Principal, require(Perm.ADMIN)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=MIN_LENGTH, max_length=256)
    role: Role
    display_name: str = Field(default="", max_length=200, pattern=NO_NUL)
    camera_groups: GroupList | None = None


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=MIN_LENGTH, max_length=256)
    role: Role | None = None
    camera_groups: GroupList | None = None


@router.get("/users", summary="Every user (admin)")
async def users(pool: PoolDep, _: AdminDep) -> list[UserOut]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT username, display_name, role, camera_groups, disabled FROM users ORDER BY username"
        )
        return [UserOut(**r) for r in await cur.fetchall()]


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Add a user (admin)")
async def add_user(body: UserCreate, pool: PoolDep, admin: AdminDep) -> UserOut:
    hashed = await asyncio.to_thread(hash_password, body.password)
    async with pool.connection() as conn, conn.transaction():
        try:
            await conn.execute(
                INSERT_USER,
                (body.username, body.display_name, body.role.value, body.camera_groups, hashed),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, "that username is taken") from exc
        await audit.append(
            conn, admin.name, "user_add", "user", body.username,
            {"role": body.role.value, "camera_groups": body.camera_groups},
        )  # fmt: skip
    return UserOut(
        username=body.username,
        display_name=body.display_name or body.username,
        role=body.role,
        camera_groups=body.camera_groups,
    )


@router.patch("/users/{username}", summary="Disable/enable a user, reset the password, change role (admin)")
async def patch_user(
    username: Annotated[str, Path(pattern=USERNAME_PATTERN)], body: UserPatch, pool: PoolDep, admin: AdminDep
) -> UserOut:
    hashed = await asyncio.to_thread(hash_password, body.password) if body.password else None
    changes = body.model_dump(exclude_unset=True, exclude={"password"})
    async with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE users SET disabled = COALESCE(%s, disabled), role = COALESCE(%s, role), "
            "password_hash = COALESCE(%s, password_hash), "
            "camera_groups = CASE WHEN %s THEN %s ELSE camera_groups END, "
            "token_version = token_version + 1 WHERE username = %s "
            "RETURNING username, display_name, role, camera_groups, disabled",
            (
                body.disabled,
                body.role.value if body.role else None,
                hashed,
                "camera_groups" in changes,
                body.camera_groups,
                username,
            ),
        )
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
        await audit.append(
            conn, admin.name, "user_change", "user", username,
            {**changes, "password_reset": hashed is not None},
        )  # fmt: skip
        # Every server instance hears this on commit: the user's open live sockets check again now.
        await conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, auth_change_note(username)))
    return UserOut(**row)


# --- admin: API keys ---------------------------------------------------------------------------
class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    role: Role
    camera_groups: GroupList | None = None


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, summary="Create an API key (admin)")
async def add_key(body: KeyCreate, pool: PoolDep, admin: AdminDep) -> dict[str, Any]:
    key = new_api_key()
    async with pool.connection() as conn, conn.transaction():
        try:
            await conn.execute(
                INSERT_API_KEY,
                (body.name, key_hash(key), key[:8], body.role.value, body.camera_groups, admin.name),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, "an API key of that name exists") from exc
        await audit.append(conn, admin.name, "api_key_add", "api_key", body.name, {"role": body.role.value})
    return {"name": body.name, "role": body.role.value, "key": key, "note": "shown once; store it now"}


@router.get("/api-keys", summary="API keys (admin; the keys themselves are never shown again)")
async def keys(pool: PoolDep, _: AdminDep) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT name, key_prefix, role, camera_groups, created_by, created_at, revoked_at, last_used_at "
            "FROM api_keys ORDER BY name"
        )
        return [
            {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()}
            for r in await cur.fetchall()
        ]


@router.delete("/api-keys/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
async def revoke_key(
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], pool: PoolDep, admin: AdminDep
) -> None:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,)
        )
        if cur.rowcount == 0:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such active API key")
        await audit.append(conn, admin.name, "api_key_revoke", "api_key", name)


@router.get("/audit/verify", summary="Recompute the audit log's hash chain (admin)")
async def verify_audit(pool: PoolDep, _: AdminDep) -> dict[str, Any]:
    async with pool.connection() as conn:
        check = await audit.verify(conn)
    return {"ok": check.ok, "rows": check.rows, "first_bad_id": check.first_bad_id, "reason": check.reason}


@router.get("/audit", summary="The latest audit entries, optionally for one target (admin)")
async def audit_entries(
    pool: PoolDep,
    _: AdminDep,
    target_type: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    target_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, at, actor, action, target_type, target_id, details FROM audit_log "
            "WHERE (%s::text IS NULL OR target_type = %s) AND (%s::text IS NULL OR target_id = %s) "
            "ORDER BY id DESC LIMIT %s",
            (target_type, target_type, target_id, target_id, limit),
        )
        return [{**r, "at": r["at"].isoformat()} for r in await cur.fetchall()]


__all__ = ["API_KEY_PREFIX", "router"]
