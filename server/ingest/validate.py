"""Checks beyond the wire contract: known site and camera, plausible time, and every line, direction,
zone, junction and class named in a counts message known to the site config. Pure, no I/O.

Direction and class names are free text on the wire; without the site-config check an edge (or a forged
message) could store any text, which then reaches planners' exports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from pydantic import ValidationError

from citywatch.site import Camera, SiteConfig
from contract import ContractError, CountsMessage, Message, parse_message, parse_topic
from contract.messages import MAX_PAYLOAD_BYTES, MESSAGE_TYPES
from contract.topics import Topic

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


@dataclass(frozen=True, slots=True)
class _CameraNames:
    """The names a camera's counts may use, as sets (checked for every row on the hot path)."""

    directions: dict[str, frozenset[str]]  # line id -> its two direction names
    classes: frozenset[str]
    zones: frozenset[str]
    junctions: dict[str, frozenset[str]]  # junction id -> its entry and exit lines

    @classmethod
    def of(cls, camera: Camera) -> _CameraNames:
        return cls(
            {ln.id: frozenset((ln.directions.positive, ln.directions.negative)) for ln in camera.lines},
            frozenset(camera.detector.classes),
            frozenset(z.id for z in camera.zones),
            {j.id: frozenset((*j.entries, *j.exits)) for j in camera.junctions},
        )

    def problem(self, m: CountsMessage) -> str | None:
        """The first name of ``m`` the site config does not know, described; None when all are known."""
        for i, c in enumerate(m.lines):
            dirs = self.directions.get(c.line_id)
            if dirs is None:
                return f"lines[{i}].line_id: {c.line_id!r} is not a line of camera {m.camera_id!r}"
            if c.direction not in dirs:
                allowed = " or ".join(map(repr, sorted(dirs)))
                return f"lines[{i}].direction: {c.direction[:64]!r} is not {allowed} (line {c.line_id!r})"
            if c.cls not in self.classes:
                return f"lines[{i}].cls: {c.cls[:32]!r} is not a class of camera {m.camera_id!r}"
        for i, s in enumerate(m.speeds):
            dirs = self.directions.get(s.line_id)
            if dirs is None or s.direction not in dirs or s.cls not in self.classes:
                return (
                    f"speeds[{i}]: line {s.line_id!r}, direction {s.direction[:64]!r} or class "
                    f"{s.cls[:32]!r} unknown to camera {m.camera_id!r}"
                )
        for i, z in enumerate(m.zones):
            if z.zone_id not in self.zones or z.cls not in self.classes:
                cam = m.camera_id
                return f"zones[{i}]: zone {z.zone_id!r} or class {z.cls[:32]!r} unknown to camera {cam!r}"
        for i, mv in enumerate(m.movements):
            lines = self.junctions.get(mv.junction_id)
            if (
                lines is None
                or mv.from_line not in lines
                or mv.to_line not in lines
                or mv.cls not in self.classes
            ):
                return (
                    f"movements[{i}]: junction {mv.junction_id!r}, lines or class {mv.cls[:32]!r} "
                    f"unknown to camera {m.camera_id!r}"
                )
        return None


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
        self._cameras = {c.id: _CameraNames.of(c) for c in site.cameras}
        self._max_future = timedelta(seconds=max_future_s)
        self._max_age = timedelta(days=max_age_days)
        self._clock = clock

    @staticmethod
    def _parse(payload: bytes, topic: Topic) -> Message:
        """The contract's :func:`parse_message`, with a fast path for the common case.

        The topic names the kind, so the payload is validated straight from JSON by that kind's model
        (pydantic-core, about twice the rate of ``json.loads`` + the tagged union). The fast result is
        used only when it is what the full path would accept: ``kind`` and ``schema_version`` present,
        site and camera as in the topic. Anything else, valid or not, goes through the full path, which
        gives the exact reason; so the contract is checked exactly as before, only faster."""
        model = MESSAGE_TYPES.get(topic.kind)
        if model is not None and len(payload) <= MAX_PAYLOAD_BYTES:
            try:
                fast = model.model_validate_json(payload)
            except (ValidationError, ValueError, RecursionError):
                fast = None
            if (
                fast is not None
                and {"kind", "schema_version"} <= fast.model_fields_set
                and fast.site_id == topic.site_id
                and fast.camera_id == topic.camera_id
                and fast.seq < 2**63
            ):
                return cast(Message, fast)
        return parse_message(payload, topic)

    def check(self, incoming: Incoming) -> Accepted | Rejected:
        try:
            topic = parse_topic(incoming.topic, self._prefix)
            message = self._parse(incoming.payload, topic)
        except ContractError as exc:
            cam, mid = _peek_ids(incoming.payload)
            return Rejected(incoming, exc.reason, str(exc)[:1000], cam, mid)
        mid = str(message.msg_id)
        if message.site_id != self._site_id:
            return Rejected(
                incoming, "unknown_site", f"site_id: {message.site_id!r} is not {self._site_id!r}", None, mid
            )
        names = self._cameras.get(message.camera_id)
        if names is None:
            detail = f"camera_id: {message.camera_id!r} is not in the site config"
            return Rejected(incoming, "unknown_camera", detail, message.camera_id, mid)
        if isinstance(message, CountsMessage):
            problem = names.problem(message)
            if problem is not None:
                return Rejected(incoming, "unknown_name", problem, message.camera_id, mid)
        now = datetime.fromtimestamp(self._clock(), UTC)
        if message.ts > now + self._max_future:
            detail = f"ts: {message.ts.isoformat()} is more than {self._max_future} ahead of server time"
            return Rejected(incoming, "future", detail, message.camera_id, mid)
        if message.ts < now - self._max_age:
            detail = f"ts: {message.ts.isoformat()} is older than {self._max_age.days} days"
            return Rejected(incoming, "too_old", detail, message.camera_id, mid)
        return Accepted(incoming, message)
