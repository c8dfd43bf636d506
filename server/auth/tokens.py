"""Access tokens for people: JWT (HS256) naming the user, role and token version, with an expiry."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ISSUER = "citywatch"
ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is missing, malformed, forged or expired (the reason is logged, never sent)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    username: str
    version: int
    expires_at: float


def issue(secret: str, username: str, version: int, ttl_s: int, now: float | None = None) -> str:
    now = time.time() if now is None else now
    claims = {"iss": ISSUER, "sub": username, "ver": version, "iat": int(now), "exp": int(now + ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # never "none", never a key-confusion algorithm
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"{type(exc).__name__}: {exc}") from exc
    sub, ver = claims.get("sub"), claims.get("ver")
    if not isinstance(sub, str) or not isinstance(ver, int):
        raise TokenError("claims sub/ver missing or of the wrong type")
    return TokenClaims(sub, ver, float(claims["exp"]))
