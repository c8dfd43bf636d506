"""The alert: what every channel delivers, and its documented JSON form (docs/alerting.md)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contract.messages import IncidentEvent, IncidentMessage, IncidentType, Severity

ALERT_VERSION: Literal[1] = 1


class Alert(BaseModel):
    """One alert raised by one rule for one incident."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: UUID = Field(default_factory=uuid.uuid4, description="Unique id; receivers dedupe on it.")
    rule_id: str = Field(description="The alert rule that raised it.")
    escalation_level: int = Field(default=0, ge=0, description="0 first notice, 1.. escalation steps.")
    site_id: str
    camera_id: str
    camera_group: str
    edge_id: str
    incident_id: UUID
    event: IncidentEvent
    type: IncidentType
    severity: Severity
    zone_id: str | None = None
    line_id: str | None = None
    summary: str = ""
    started_at: AwareDatetime
    raised_at: AwareDatetime = Field(description="When the server raised the alert.")
    latitude: float | None = None
    longitude: float | None = None
    snapshot_url: str | None = Field(default=None, description="Where the server serves the snapshot.")
    snapshot_jpeg: bytes | None = Field(default=None, exclude=True, description="Attached by email.")
    clip_url: str | None = Field(
        default=None,
        description="Where the server serves the incident's video clip (critical incidents; the clip "
        "arrives some seconds after the start, so the link may answer 404 briefly).",
    )

    @classmethod
    def from_incident(
        cls,
        incident: IncidentMessage,
        *,
        rule_id: str,
        camera_group: str,
        raised_at: datetime,
        snapshot_url: str | None = None,
        clip_url: str | None = None,
    ) -> Alert:
        """Build the alert for ``incident``; the snapshot's JPEG bytes are decoded when present."""
        jpeg = None
        if incident.snapshot is not None:
            try:
                jpeg = base64.b64decode(incident.snapshot.data_b64, validate=True)
            except (binascii.Error, ValueError):
                jpeg = None  # a bad snapshot must not cost the alert itself
        return cls(
            rule_id=rule_id,
            site_id=incident.site_id,
            camera_id=incident.camera_id,
            camera_group=camera_group,
            edge_id=incident.edge_id,
            incident_id=incident.incident_id,
            event=incident.event,
            type=incident.type,
            severity=incident.severity,
            zone_id=incident.zone_id,
            line_id=incident.line_id,
            summary=incident.summary,
            started_at=incident.started_at,
            raised_at=raised_at.astimezone(UTC),
            latitude=incident.latitude,
            longitude=incident.longitude,
            snapshot_url=snapshot_url,
            snapshot_jpeg=jpeg,
            clip_url=clip_url,
        )

    def payload(self) -> dict[str, Any]:
        """The JSON object sent by the webhook and MQTT channels (documented in docs/alerting.md)."""
        body = self.model_dump(mode="json", exclude={"snapshot_jpeg"})
        return {
            "kind": "alert",
            "version": ALERT_VERSION,
            **body,
            "has_snapshot": self.snapshot_jpeg is not None,
        }

    def title(self) -> str:
        """A one-line subject, e.g. ``[critical] intrusion at cam-a (zone yard)``."""
        where = self.camera_id
        if self.zone_id:
            where += f" (zone {self.zone_id})"
        elif self.line_id:
            where += f" (line {self.line_id})"
        return f"[{self.severity.value}] {self.type.value.replace('_', ' ')} at {where}"
