"""Webhook signatures: HMAC-SHA256 over ``f"{timestamp}.{body}"`` (docs/alerting.md).

Signing the timestamp with the body lets a receiver reject replays of an old request.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from server.alerting.errors import SignatureError

TIMESTAMP_HEADER = "X-Citywatch-Timestamp"
SIGNATURE_HEADER = "X-Citywatch-Signature"
_SCHEME = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Citywatch-Signature`` value: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return _SCHEME + mac.hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_s: float = 300.0,
    *,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise :class:`SignatureError` if malformed, stale or not matching.

    ``timestamp`` and ``signature`` are the raw header values, ``body`` the raw request bytes (verify
    before parsing the JSON: any re-serialisation changes the bytes).
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError) as exc:
        raise SignatureError("timestamp header is not an integer") from exc
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        raise SignatureError(f"timestamp is {now - ts:.0f} s from now (tolerance {tolerance_s:.0f} s)")
    if not signature.startswith(_SCHEME):
        raise SignatureError("signature header must start with 'sha256='")
    if not hmac.compare_digest(sign(secret, ts, body), signature):
        raise SignatureError("signature does not match")
