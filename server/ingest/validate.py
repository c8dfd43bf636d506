"""Checks beyond the wire contract: known site and camera, plausible time. Pure, no I/O."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from citywatch.site import SiteConfig
from contract import ContractError, Message, parse_message, parse_topic

#: Bytes of a rejected payload kept in the dead-letter table (the size is recorded in full).
DEAD_LETTER_PAYLOAD_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class Incoming:
    """One MQTT PUBLISH as received: what the writer needs to store it and then acknowledge it."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float  # time.time() on arrival


@dataclass(frozen=True, slots=True)
class Accepted:
    incoming: Incoming
    message: Message


@dataclass(frozen=True, slots=True)
class Rejected:
    incoming: Incoming
    reason: str
    detail: str
    camera_id: str | None = None
    msg_id: str | None = None


def _peek_ids(payload: bytes) -> tuple[str | None, str | None]:
    """Best-effort camera and message ids of a rejected payload, for the log and the table."""
    if len(payload) > DEAD_LETTER_PAYLOAD_MAX:
        return None, None
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError):  # not JSON, too deep, an integer too long to parse
        return None, None
    if not isinstance(raw, dict):
        return None, None
    cam, mid = raw.get("camera_id"), raw.get("msg_id")
    return (
        cam[:64] if isinstance(cam, str) else None,
        mid[:64] if isinstance(mid, str) else None,
    )


class Validator:
    """Turns an :class:`Incoming` into :class:`Accepted` or :class:`Rejected` (with a reason)."""

    def __init__(
        self,
        site: SiteConfig,
        max_future_s: float = 300.0,
        max_age_days: float = 365.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._site_id = site.site.id
        self._prefix = site.mqtt_prefix
        self._cameras = frozenset(c.id for c in site.cameras)
        self._max_future = timedelta(seconds=max_future_s)
        self._max_age = timedelta(days=max_age_days)
        self._clock = clock

    def check(self, incoming: Incoming) -> Accepted | Rejected:
        try:
            topic = parse_topic(incoming.topic, self._prefix)
            message = parse_message(incoming.payload, topic)
        except ContractError as exc:
            cam, mid = _peek_ids(incoming.payload)
            return Rejected(incoming, exc.reason, str(exc)[:1000], cam, mid)
        mid = str(message.msg_id)
        if message.site_id != self._site_id:
            return Rejected(
                incoming, "unknown_site", f"site_id: {message.site_id!r} is not {self._site_id!r}", None, mid
            )
        if message.camera_id not in self._cameras:
            detail = f"camera_id: {message.camera_id!r} is not in the site config"
            return Rejected(incoming, "unknown_camera", detail, message.camera_id, mid)
        now = datetime.fromtimestamp(self._clock(), UTC)
        if message.ts > now + self._max_future:
            detail = f"ts: {message.ts.isoformat()} is more than {self._max_future} ahead of server time"
            return Rejected(incoming, "future", detail, message.camera_id, mid)
        if message.ts < now - self._max_age:
            detail = f"ts: {message.ts.isoformat()} is older than {self._max_age.days} days"
            return Rejected(incoming, "too_old", detail, message.camera_id, mid)
        return Accepted(incoming, message)
