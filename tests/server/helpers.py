"""Builders shared by the server tests: site files, contract messages, a real publisher, polling."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from contract import (
    CountsMessage,
    DirectionCount,
    HeartbeatMessage,
    IncidentEvent,
    IncidentMessage,
    IncidentType,
    Severity,
    StatusMessage,
    StreamState,
    dump_message,
    topic_for,
)
from contract.messages import Envelope

T = TypeVar("T")

SITE_TEMPLATE = """
site:
  id: {site_id}
  name: "Test site"
  timezone: Asia/Ho_Chi_Minh
  center: {{lat: 13.77, lon: 109.22}}
  bin_seconds: 60
mqtt_prefix: {prefix}
cameras:
{cameras}
"""
CAMERA_TEMPLATE = """  - id: {cam}
    name: "Camera {cam}"
    location: {{lat: 13.7762, lon: 109.2218}}
    source: {{kind: webcam, index: 0}}
    lines:
      - id: L1
        points: [[0.0, 0.5], [1.0, 0.5]]
        directions: {{positive: north, negative: south}}
      - id: L2
        points: [[0.5, 0.0], [0.5, 1.0]]
        directions: {{positive: east, negative: west}}
"""


def write_site(folder: Path, site_id: str, prefix: str, cameras: list[str]) -> Path:
    path = folder / f"site-{site_id}.yaml"
    body = "".join(CAMERA_TEMPLATE.format(cam=c) for c in cameras)
    path.write_text(SITE_TEMPLATE.format(site_id=site_id, prefix=prefix, cameras=body), encoding="utf-8")
    return path


def counts(
    site_id: str,
    cam: str,
    seq: int,
    bin_start: datetime,
    cells: dict[tuple[str, str, str], int] | None = None,
    *,
    bin_s: int = 60,
    health: list[Any] | None = None,
    ts: datetime | None = None,
    msg_id: uuid.UUID | None = None,
) -> CountsMessage:
    cells = {("L1", "north", "car"): 3, ("L2", "east", "motorcycle"): 5} if cells is None else cells
    return CountsMessage(
        msg_id=msg_id or uuid.uuid4(),
        site_id=site_id,
        edge_id="edge-1",
        camera_id=cam,
        seq=seq,
        ts=ts or datetime.now(UTC),
        bin_start=bin_start,
        bin_end=bin_start + timedelta(seconds=bin_s),
        lines=[
            DirectionCount(line_id=k[0], direction=k[1], cls=k[2], count=v) for k, v in cells.items() if v
        ],
        frames=600,
        fps=10.0,
        health=health or [],
    )


def heartbeat(site_id: str, cam: str, seq: int) -> HeartbeatMessage:
    return HeartbeatMessage(
        msg_id=uuid.uuid4(), site_id=site_id, edge_id="edge-1", camera_id=cam, seq=seq, ts=datetime.now(UTC),
        fps=10.0, source_fps=25.0, inference_ms=20.0, dropped_frames=0, outbox_depth=0, uptime_s=5.0,
        reconnects=0,
    )  # fmt: skip


def status(site_id: str, cam: str, seq: int, state: StreamState = StreamState.ONLINE) -> StatusMessage:
    return StatusMessage(
        msg_id=uuid.uuid4(), site_id=site_id, edge_id="edge-1", camera_id=cam, seq=seq, ts=datetime.now(UTC),
        state=state,
    )  # fmt: skip


def incident(
    site_id: str, cam: str, seq: int, incident_id: uuid.UUID, event: IncidentEvent, started: datetime
) -> IncidentMessage:
    return IncidentMessage(
        msg_id=uuid.uuid4(), site_id=site_id, edge_id="edge-1", camera_id=cam, seq=seq,
        ts=datetime.now(UTC), incident_id=incident_id, event=event, type=IncidentType.WRONG_WAY,
        severity=Severity.CRITICAL, rule_id="ww", line_id="L1", track_ids=[seq], classes=["motorcycle"],
        started_at=started, ended_at=datetime.now(UTC) if event is IncidentEvent.END else None,
        summary=f"event {event}",
    )  # fmt: skip


class Publisher:
    """A real paho client publishing contract payloads at QoS 1."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()

    def topic(self, m: Envelope, kind: str | None = None) -> str:
        return topic_for(m.site_id, m.camera_id, kind or str(getattr(m, "kind", "counts")), self.prefix)

    def send(self, m: Envelope) -> mqtt.MQTTMessageInfo:
        return self.client.publish(self.topic(m), dump_message(m), qos=1)

    def raw(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def poll(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float = 20.0, every: float = 0.1) -> T:
    """Call ``fn`` until ``ok(result)``; return the last result (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(every)
        value = fn()
    return value


PASSWORD = "correct-horse-battery"


def login(client: Any, dsn: str, role: str = "admin", groups: list[str] | None = None) -> str:
    """Create a user with ``role`` and log ``client`` (a TestClient) in as them; returns the token."""
    from server.auth.users import create_user

    name = f"t-{role}-{uuid.uuid4().hex[:8]}"
    create_user(dsn, name, PASSWORD, role, groups)
    r = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return token
