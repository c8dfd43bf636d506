"""Who is calling: the ``Principal`` of a request, from a bearer JWT (people) or an API key (machines).

``require(perm)`` is the dependency routes use. Every failure is 401 (no or bad credentials) or 403
(the role may not); the reason is logged, never sent, so a caller learns nothing about which part failed.
Each authenticated caller has a request budget (``CITYWATCH_API_RATE`` / ``CITYWATCH_API_BURST``):
over it, 429 with Retry-After.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from psycopg_pool import AsyncConnectionPool

from server.auth import tokens
from server.auth.ratelimit import UserRateLimiter
from server.auth.roles import Perm, Role, allowed
from server.auth.users import API_KEY_PREFIX, find_user, key_hash

log = logging.getLogger(__name__)

UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED, "not authenticated", headers={"WWW-Authenticate": "Bearer"}
)
FORBIDDEN = HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # username, or "key:<name>" for an API key
    role: Role
    camera_groups: tuple[str, ...] | None  # None: every camera
    display_name: str = ""

    def may(self, perm: Perm) -> bool:
        return allowed(self.role, perm)

    def sees_group(self, group: str) -> bool:
        return self.camera_groups is None or group in self.camera_groups


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


async def authenticate(pool: AsyncConnectionPool[Any], secret: str, credential: str) -> Principal | None:
    """The principal a token or API key stands for; None when it stands for nobody (any reason)."""
    if credential.startswith(API_KEY_PREFIX):
        async with pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET last_used_at = now() WHERE key_hash = %s AND revoked_at IS NULL "
                "RETURNING name, role, camera_groups",
                (key_hash(credential),),
            )
            row = await cur.fetchone()
        if row is None:
            log.info("auth: unknown or revoked API key %s...", credential[:8])
            return None
        name, role, groups = row
        return Principal(f"key:{name}", Role(role), None if groups is None else tuple(groups), name)
    found = await authenticate_token(pool, secret, credential)
    return None if found is None else found[0]


async def authenticate_token(
    pool: AsyncConnectionPool[Any], secret: str, token: str
) -> tuple[Principal, float] | None:
    """A person's access token (never an API key): the principal and the token's expiry (epoch s).

    Checked again on every call: an expired token, a disabled user or a bumped token version (any
    admin change of the user) is None."""
    if token.startswith(API_KEY_PREFIX):
        log.info("auth: an API key was offered where only a person's token is accepted")
        return None
    try:
        claims = tokens.decode(secret, token)
    except tokens.TokenError as exc:
        log.info("auth: token refused: %s", exc)
        return None
    async with pool.connection() as conn:
        user = await find_user(conn, claims.username)
    if user is None or user.disabled or user.token_version != claims.version:
        log.info("auth: token of %r refused (unknown, disabled or revoked)", claims.username)
        return None
    principal = Principal(user.username, user.role, user.camera_groups, user.display_name)
    return principal, claims.expires_at


async def current_principal(request: Request) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    credential = _bearer(request.headers.get("authorization"))
    if credential is None:
        raise UNAUTHORIZED
    app = request.app
    principal = await authenticate(app.state.pool, app.state.jwt_secret, credential)
    if principal is None:
        raise UNAUTHORIZED
    limiter: UserRateLimiter | None = getattr(app.state, "api_limiter", None)
    wait = 0.0 if limiter is None else limiter.take(principal.name)
    if wait > 0:
        log.info("rate limit: %r is over the per-user request rate", principal.name)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many requests; slow down",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(perm: Perm) -> Any:
    """A dependency that admits principals whose role has ``perm`` (403 otherwise)."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.may(perm):
            raise FORBIDDEN
        return principal

    check.__name__ = f"require_{perm.value}"
    return Depends(check)
