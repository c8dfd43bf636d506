"""Alerts for the channel and dispatcher tests."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from contract.messages import IncidentEvent, IncidentMessage, IncidentType, Severity, Snapshot
from server.alerting.alert import Alert

# The smallest well-formed JPEG is not needed: channels treat the bytes as opaque.
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"


def make_alert(*, snapshot: bool = True, site_id: str = "qn") -> Alert:
    now = datetime.now(UTC)
    incident = IncidentMessage(
        msg_id=uuid.uuid4(),
        site_id=site_id,
        edge_id="edge-centre",
        camera_id="cam-a",
        seq=7,
        ts=now,
        incident_id=uuid.uuid4(),
        event=IncidentEvent.START,
        type=IncidentType.WRONG_WAY,
        severity=Severity.CRITICAL,
        rule_id="ww-1",
        line_id="L1",
        started_at=now,
        summary="motorcycle riding against traffic on Trần Hưng Đạo",
        latitude=13.7762,
        longitude=109.2218,
        snapshot=Snapshot(width=64, height=48, data_b64=base64.b64encode(JPEG).decode())
        if snapshot
        else None,
    )
    return Alert.from_incident(incident, rule_id="night-ops", camera_group="centre", raised_at=now)
