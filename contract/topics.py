"""Versioned MQTT topics: ``<prefix>/v<major>/<site>/<camera>/<kind>``.

Examples: ``citywatch/v1/quynhon/cam-ngo-may/counts``, ``citywatch/v1/quynhon/cam-ngo-may/status``.
Subscribers use ``citywatch/v1/+/+/+`` (or a site filter). Ids are restricted to ``[A-Za-z0-9_-]`` so
they can never contain the MQTT wildcards ``+``/``#`` or the level separator ``/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contract.errors import ContractError

DEFAULT_PREFIX = "citywatch"
MAJOR = 1
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

#: Topic level for each message kind.
KINDS = ("counts", "incident", "status", "heartbeat", "evidence")


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed contract topic."""

    prefix: str
    major: int
    site_id: str
    camera_id: str
    kind: str

    def __str__(self) -> str:
        return f"{self.prefix}/v{self.major}/{self.site_id}/{self.camera_id}/{self.kind}"


def _check_id(name: str, value: str) -> None:
    # fullmatch, not match: a Python "$" also matches before a final newline ("cam\n").
    if not _ID_RE.fullmatch(value):
        raise ContractError("topic", f"{name}: {value!r} is not a valid id (letters, digits, '_', '-')")


def topic_for(site_id: str, camera_id: str, kind: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Build the topic a message of ``kind`` for this camera is published on."""
    _check_id("site_id", site_id)
    _check_id("camera_id", camera_id)
    if kind not in KINDS:
        raise ContractError("topic", f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    return str(Topic(prefix, MAJOR, site_id, camera_id, kind))


def ack_topic(site_id: str, camera_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where the server confirms a camera's stored sequence numbers (see :mod:`contract.acks`)."""
    _check_id("site_id", site_id)
    _check_id("camera_id", camera_id)
    return f"{prefix}/acks/v{MAJOR}/{site_id}/{camera_id}"


def subscription(prefix: str = DEFAULT_PREFIX, site_id: str = "+") -> str:
    """The topic filter that receives every contract message of a site (or of all sites)."""
    return f"{prefix}/v{MAJOR}/{site_id}/+/+"


def parse_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> Topic:
    """Split a topic into its parts, rejecting anything outside the contract."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != prefix:
        raise ContractError("topic", f"topic: {topic!r} is not <{prefix}>/v<major>/<site>/<camera>/<kind>")
    if parts[1] != f"v{MAJOR}":
        raise ContractError("version", f"topic: major version {parts[1]!r} is not supported (v{MAJOR})")
    _check_id("site_id", parts[2])
    _check_id("camera_id", parts[3])
    if parts[4] not in KINDS:
        raise ContractError("topic", f"topic: kind {parts[4]!r} is not one of {', '.join(KINDS)}")
    return Topic(parts[0], MAJOR, parts[2], parts[3], parts[4])
