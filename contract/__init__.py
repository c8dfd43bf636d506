"""The citywatch wire contract: MQTT topics and the pydantic model of every payload.

Imported by both ``edge`` and ``server``; imports neither. Within a major schema version readers
ignore unknown fields, so an edge may add information without breaking older servers; a breaking
change is a new major version with its own topic root (``citywatch/v2/...``).
"""

from contract.errors import ContractError
from contract.messages import (
    SCHEMA_VERSION,
    CountsMessage,
    DirectionCount,
    EvidenceMessage,
    HealthFlag,
    HeartbeatMessage,
    IncidentEvent,
    IncidentMessage,
    IncidentType,
    Message,
    MessageKind,
    Movement,
    Point,
    Severity,
    Snapshot,
    SpeedStat,
    StatusMessage,
    StreamState,
    ZoneOccupancy,
    dump_message,
    parse_message,
)
from contract.topics import DEFAULT_PREFIX, MAJOR, Topic, parse_topic, topic_for

__all__ = [
    "DEFAULT_PREFIX",
    "MAJOR",
    "SCHEMA_VERSION",
    "ContractError",
    "CountsMessage",
    "DirectionCount",
    "EvidenceMessage",
    "HealthFlag",
    "HeartbeatMessage",
    "IncidentEvent",
    "IncidentMessage",
    "IncidentType",
    "Message",
    "MessageKind",
    "Movement",
    "Point",
    "Severity",
    "Snapshot",
    "SpeedStat",
    "StatusMessage",
    "StreamState",
    "Topic",
    "ZoneOccupancy",
    "dump_message",
    "parse_message",
    "parse_topic",
    "topic_for",
]
