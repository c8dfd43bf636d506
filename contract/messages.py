"""Pydantic models of every MQTT payload.

Every payload carries ``kind``, ``schema_version``, a unique ``msg_id``, ``site_id``, ``edge_id``,
``camera_id``, the per-camera sequence number ``seq`` and the UTC time ``ts`` it was produced.

Sequence numbers: each camera numbers its *data* messages (counts, incident, heartbeat) 1, 2, 3, ...
without gaps, persisted across restarts by the edge outbox, so a reader can tell a lost message from
a quiet camera. Status messages (including the broker-published last will) repeat the last data
sequence number allocated and are not part of the gap check.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.errors import ContractError
from contract.topics import ID_PATTERN, Topic

SCHEMA_VERSION: Literal[1] = 1
#: Largest payload a reader must accept (an incident with its JPEG snapshot fits easily).
MAX_PAYLOAD_BYTES = 2 * 1024 * 1024

Id = Annotated[str, Field(pattern=ID_PATTERN, description="Identifier: letters, digits, '_' and '-'.")]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class MessageKind(StrEnum):
    COUNTS = "counts"
    INCIDENT = "incident"
    STATUS = "status"
    HEARTBEAT = "heartbeat"
    EVIDENCE = "evidence"


class HealthFlag(StrEnum):
    """Camera health conditions; a count bin carries every flag seen during it."""

    STREAM_DOWN = "stream_down"
    LOW_FPS = "low_fps"
    FROZEN = "frozen"
    BLACK = "black"
    BLURRED = "blurred"
    MOVED = "moved"


class StreamState(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class IncidentType(StrEnum):
    STOPPED_VEHICLE = "stopped_vehicle"
    WRONG_WAY = "wrong_way"
    CONGESTION = "congestion"
    INTRUSION = "intrusion"
    LOITERING = "loitering"
    CROWDING = "crowding"
    TAMPERING = "tampering"
    # Road-safety incidents (added within v1; critical by default in the site config).
    COLLISION = "collision"
    VEHICLE_FALLEN = "vehicle_fallen"
    PERSON_DOWN = "person_down"
    ROAD_BLOCKED = "road_blocked"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class IncidentEvent(StrEnum):
    """Incident state changes as seen by the edge: it starts once, may be updated, ends once."""

    START = "start"
    UPDATE = "update"
    END = "end"


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 lies before datetime.min in UTC
        raise ValueError("out of range once converted to UTC") from exc


class _Base(BaseModel):
    # Readers ignore unknown fields within a major version (forward compatibility). Non-finite floats
    # are refused: JSON has no spelling for them, so a message holding one could not be written back.
    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=False, allow_inf_nan=False)


class Envelope(_Base):
    """Fields every payload carries."""

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Major schema version; readers reject others."
    )
    msg_id: UUID = Field(description="Unique id of this message; the idempotency key.")
    site_id: Id
    edge_id: Id = Field(description="The edge worker that produced the message.")
    camera_id: Id
    seq: int = Field(ge=0, description="Per-camera sequence number of data messages (see module docs).")
    ts: AwareDatetime = Field(description="UTC time the message was produced.")

    @field_validator("ts")
    @classmethod
    def _ts_utc(cls, value: datetime) -> datetime:
        return _utc(value)


class Point(_Base):
    """A normalized image point (x right, y down, 0..1)."""

    x: Unit
    y: Unit


class DirectionCount(_Base):
    """Crossings of one line in one direction by one class during a bin."""

    line_id: Id
    direction: str = Field(min_length=1, max_length=64, description="Direction name from the site config.")
    cls: str = Field(min_length=1, max_length=32, description="COCO class name, e.g. 'motorcycle'.")
    count: int = Field(ge=0)


class SpeedStat(_Base):
    """Speeds (km/h) of the crossings of one line, direction and class; only with calibration."""

    line_id: Id
    direction: str = Field(min_length=1, max_length=64)
    cls: str = Field(min_length=1, max_length=32)
    n: int = Field(ge=1)
    mean_kmh: float = Field(ge=0)
    p85_kmh: float = Field(ge=0)


class ZoneOccupancy(_Base):
    """Occupancy of one zone by one class during a bin."""

    zone_id: Id
    cls: str = Field(min_length=1, max_length=32)
    mean_count: float = Field(ge=0, description="Mean number of objects inside over the bin's frames.")
    max_count: int = Field(ge=0)
    entries: int = Field(ge=0, description="Objects that entered the zone during the bin.")
    mean_dwell_s: float | None = Field(
        default=None, ge=0, description="Mean dwell time of objects that left the zone during the bin."
    )


class Movement(_Base):
    """Turning movements of one class through one junction during a bin: entered by one line, left by
    another (see docs/contract.md for the pairing rule)."""

    junction_id: Id = Field(description="Junction id from the site config.")
    from_line: Id = Field(description="The entry line crossed first.")
    to_line: Id = Field(description="The exit line crossed afterwards.")
    cls: str = Field(min_length=1, max_length=32, description="Class of the object at the exit crossing.")
    count: int = Field(ge=0)


class CountsMessage(Envelope):
    """Counts for one camera and one time bin ``[bin_start, bin_end)``.

    The key ``(camera_id, bin_start)`` is unique: a redelivered or re-sent bin replaces nothing.
    """

    kind: Literal[MessageKind.COUNTS] = MessageKind.COUNTS
    bin_start: AwareDatetime
    bin_end: AwareDatetime
    lines: list[DirectionCount] = Field(default_factory=list)
    zones: list[ZoneOccupancy] = Field(default_factory=list)
    speeds: list[SpeedStat] = Field(default_factory=list)
    movements: list[Movement] = Field(
        default_factory=list,
        description="Turning movements completed during the bin (cameras with junctions only; added "
        "within v1, so older readers ignore it).",
    )
    frames: int = Field(ge=0, description="Frames analysed during the bin.")
    fps: float = Field(ge=0, description="Mean analysed frames per second during the bin.")
    health: list[HealthFlag] = Field(
        default_factory=list, description="Every health condition seen during the bin (quality flags)."
    )

    @field_validator("bin_start", "bin_end")
    @classmethod
    def _bins_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _bin_order(self) -> CountsMessage:
        if self.bin_end <= self.bin_start:
            raise ValueError("bin_end must be after bin_start")
        return self


class Snapshot(_Base):
    """A JPEG frame with the involved boxes drawn, base64 encoded."""

    content_type: Literal["image/jpeg"] = "image/jpeg"
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    data_b64: str = Field(min_length=4, description="Base64 of the JPEG bytes.")


class IncidentMessage(Envelope):
    """One state change of one incident. ``incident_id`` is stable from start to end."""

    kind: Literal[MessageKind.INCIDENT] = MessageKind.INCIDENT
    incident_id: UUID
    event: IncidentEvent
    type: IncidentType
    severity: Severity
    rule_id: Id = Field(description="The rule of the site config that raised it.")
    zone_id: Id | None = None
    line_id: Id | None = None
    track_ids: list[int] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    image_position: Point | None = Field(default=None, description="Where in the image (normalized).")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    summary: str = Field(default="", max_length=500, description="Human-readable one-liner.")
    details: dict[str, float | int | str | bool] = Field(default_factory=dict)
    snapshot: Snapshot | None = Field(default=None, description="Sent with the start event.")

    @field_validator("started_at", "ended_at")
    @classmethod
    def _times_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    @model_validator(mode="after")
    def _end_has_time(self) -> IncidentMessage:
        if self.event is IncidentEvent.END and self.ended_at is None:
            raise ValueError("ended_at is required when event is 'end'")
        return self


class EvidenceMessage(Envelope):
    """A video clip of the seconds around the start of a critical incident (added within v1).

    Sent once per incident on its own topic, after the clip's last second was seen, so it never holds
    back counts or the incident itself. Re-sent copies carry the same ``incident_id``: a reader keeps one.
    """

    kind: Literal[MessageKind.EVIDENCE] = MessageKind.EVIDENCE
    incident_id: UUID
    content_type: Literal["video/webm"] = "video/webm"
    codec: str = Field(default="vp8", max_length=16, description="Video codec inside the container.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    frames: int = Field(gt=0)
    clip_start: AwareDatetime = Field(description="Capture time of the clip's first frame.")
    duration_s: float = Field(gt=0)
    data_b64: str = Field(min_length=4, description="Base64 of the clip's bytes (the payload cap holds).")

    @field_validator("clip_start")
    @classmethod
    def _clip_utc(cls, value: datetime) -> datetime:
        return _utc(value)


class StatusMessage(Envelope):
    """Camera availability, retained. The broker publishes the ``offline`` last will itself."""

    kind: Literal[MessageKind.STATUS] = MessageKind.STATUS
    state: StreamState
    reason: str = Field(default="", max_length=200)
    health: list[HealthFlag] = Field(default_factory=list)


class HeartbeatMessage(Envelope):
    """Periodic health of one camera's pipeline on its edge worker."""

    kind: Literal[MessageKind.HEARTBEAT] = MessageKind.HEARTBEAT
    fps: float = Field(ge=0, description="Analysed frames per second since the last heartbeat.")
    source_fps: float = Field(ge=0, description="Frames per second delivered by the source.")
    inference_ms: float = Field(ge=0, description="Mean detection + tracking time per frame.")
    dropped_frames: int = Field(ge=0, description="Frames dropped as stale since start.")
    outbox_depth: int = Field(ge=0, description="Messages waiting in the edge outbox.")
    uptime_s: float = Field(ge=0)
    reconnects: int = Field(ge=0, description="Stream reconnects since start.")
    health: list[HealthFlag] = Field(default_factory=list)
    version: str = Field(default="", max_length=32, description="Edge software version.")
    frames_analysed: int | None = Field(
        default=None, ge=0, description="Frames analysed since start (detected or judged static)."
    )
    frames_detected: int | None = Field(default=None, ge=0, description="Frames run through the detector.")
    frames_skipped_motion: int | None = Field(
        default=None, ge=0, description="Frames not detected because the motion gate saw nothing move."
    )
    queue_ms: float | None = Field(
        default=None, ge=0, description="Mean wait of this camera's frames for the shared detector."
    )
    config_version: int | None = Field(
        default=None, ge=0, description="Version of the server-pushed config this camera runs (fleet)."
    )


Message = Annotated[
    CountsMessage | IncidentMessage | StatusMessage | HeartbeatMessage | EvidenceMessage,
    Field(discriminator="kind"),
]
_MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
MESSAGE_TYPES: dict[str, type[Envelope]] = {
    MessageKind.COUNTS: CountsMessage,
    MessageKind.INCIDENT: IncidentMessage,
    MessageKind.STATUS: StatusMessage,
    MessageKind.HEARTBEAT: HeartbeatMessage,
    MessageKind.EVIDENCE: EvidenceMessage,
}


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<payload>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_message(payload: bytes | str, topic: Topic | None = None) -> Message:
    """Validate a raw payload; with ``topic``, also check it agrees with the topic.

    Raises :class:`ContractError` whose text names each offending field.
    """
    # The cap is on the UTF-8 size: as text, a 2 MiB payload can be far fewer characters.
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise ContractError("size", f"<payload>: {size} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit")
    try:
        raw: Any = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        # ValueError: malformed JSON, bad UTF-8, or an integer longer than int() accepts
        # (sys.get_int_max_str_digits); RecursionError: nesting deeper than the decoder's stack.
        raise ContractError("json", f"<payload>: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ContractError("schema", "<payload>: must be a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ContractError(
            "version", f"schema_version: {version!r} is not supported (expected {SCHEMA_VERSION})"
        )
    try:
        message = _MESSAGE_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise ContractError("schema", _describe(exc)) from exc
    if topic is not None:
        mismatches = [
            f"{name}: {got!r} does not match the topic ({want!r})"
            for name, got, want in (
                ("site_id", message.site_id, topic.site_id),
                ("camera_id", message.camera_id, topic.camera_id),
                ("kind", str(message.kind), topic.kind),
            )
            if got != want
        ]
        if mismatches:
            raise ContractError("mismatch", "; ".join(mismatches))
    return message


def dump_message(message: Envelope) -> bytes:
    """Serialize a message to its wire form (compact JSON, UTF-8)."""
    return message.model_dump_json(exclude_none=True).encode()
