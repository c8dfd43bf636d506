"""Issue 12, items 4 and 8, end to end: edges with their own broker credentials (the generated passwd and
ACL in a private Mosquitto), `citywatch server run` reading as ``citywatch-server``, real PostgreSQL.

- Group A's edge cannot publish on group B's camera topics (the ACL), and when it sends group B's
  incident id on its own camera's topic, the server dead-letters the message: B's incident is unchanged.
- A counts message with a direction (or class) the site config does not know is dead-lettered and never
  reaches the counts (and so never a planner's export).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from citywatch.broker_auth import SERVER_USER, read_env_file, write_auth_files
from citywatch.site import load_site
from contract import IncidentEvent, dump_message, topic_for
from contract.messages import Envelope
from tests.citywatch.test_broker_auth import Client
from tests.mosquitto import Broker
from tests.server.helpers import counts, incident, poll
from tests.server.server_proc import ServerProcess

pytestmark = pytest.mark.integration

SITE_ID = "forgery"
CAMERA = """  - id: {cam}
    name: "{cam}"
    location: {{lat: 13.77, lon: 109.22}}
    group: {group}
    source: {{kind: webcam, index: 0}}
    lines:
      - id: L1
        points: [[0.0, 0.5], [1.0, 0.5]]
        directions: {{positive: north, negative: south}}
      - id: L2
        points: [[0.5, 0.0], [0.5, 1.0]]
        directions: {{positive: east, negative: west}}
"""


def q1(dsn: str, query: str, *params: object) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0]


class Edge:
    """One edge credential publishing contract messages."""

    def __init__(self, port: int, user: str, password: str, prefix: str) -> None:
        self.client = Client(port, user, password, f"{user}-{uuid.uuid4().hex[:6]}")
        assert not self.client.connected().is_failure
        self.prefix = prefix

    def send(self, m: Envelope, camera: str | None = None) -> bool:
        """Publish on ``camera``'s topic (the message's own by default); True when the broker took it."""
        kind = str(getattr(m, "kind", "counts"))
        topic = topic_for(m.site_id, camera or m.camera_id, kind, self.prefix)
        return not self.client.publish(topic, dump_message(m)).is_failure


@pytest.fixture
def world(tmp_path: Path, fresh_db: str, unique: str) -> Iterator[tuple[ServerProcess, Edge, Edge, str]]:
    prefix = f"cwf{unique}"
    site_path = tmp_path / "site.yaml"
    cams = CAMERA.format(cam="cam-a1", group="grp-a") + CAMERA.format(cam="cam-b1", group="grp-b")
    site_path.write_text(
        f"site: {{id: {SITE_ID}, name: F, timezone: Asia/Ho_Chi_Minh, center: {{lat: 13.77, lon: 109.22}}}}\n"
        f"mqtt_prefix: {prefix}\ncameras:\n{cams}",
        encoding="utf-8",
    )
    env_file = tmp_path / ".env"
    files = write_auth_files(load_site(site_path), tmp_path / "auth", env_file, environ={})
    pw = read_env_file(env_file)
    broker = Broker(
        tmp_path / "broker", f"password_file {files.passwd}\nacl_file {files.acl}\n", allow_anonymous=False
    )
    broker.start()
    server = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
            "MQTT_USERNAME": SERVER_USER,
            "MQTT_PASSWORD": pw["MQTT_SERVER_PASSWORD"],
            "MQTT_CLIENT_ID": f"cw-server-{unique}",
            "CITYWATCH_SITE": str(site_path),
            "CITYWATCH_ALERTING": "false",
        },
        tmp_path / "server.log",
    )
    server.start()
    edge_a = Edge(broker.port, "edge-grp-a", pw["MQTT_EDGE_GRP_A_PASSWORD"], prefix)
    edge_b = Edge(broker.port, "edge-grp-b", pw["MQTT_EDGE_GRP_B_PASSWORD"], prefix)
    try:
        yield server, edge_a, edge_b, fresh_db
    finally:
        edge_a.client.close()
        edge_b.client.close()
        server.stop()
        broker.stop()


def test_cross_group_incident_forgery_is_dead_lettered(
    world: tuple[ServerProcess, Edge, Edge, str],
) -> None:
    server, edge_a, edge_b, dsn = world
    iid = uuid.uuid4()
    started = datetime.now(UTC) - timedelta(minutes=2)
    assert edge_b.send(incident(SITE_ID, "cam-b1", 1, iid, IncidentEvent.START, started))
    poll(lambda: q1(dsn, "SELECT count(*) FROM incidents WHERE incident_id = %s", iid), lambda n: n == 1)

    # Edge A learnt the id (say from an alert). The ACL refuses B's camera topic outright...
    close = incident(SITE_ID, "cam-b1", 2, iid, IncidentEvent.END, started)
    assert not edge_a.send(close)
    # ...so it sends the close under its own camera: the server must not apply it to B's incident.
    forged = incident(SITE_ID, "cam-a1", 2, iid, IncidentEvent.END, started - timedelta(hours=1))
    assert edge_a.send(forged)
    reason = poll(
        lambda: q1(dsn, "SELECT max(reason) FROM dead_letters WHERE msg_id = %s", str(forged.msg_id)),
        lambda r: r is not None,
        timeout=30,
    )
    assert reason == "incident_owner", server.log_tail()
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT camera_id, state, started_at, ended_at FROM incidents WHERE incident_id = %s", (iid,)
        ).fetchone()
        events = conn.execute(
            "SELECT count(*) FROM incident_events WHERE incident_id = %s", (iid,)
        ).fetchone()
    assert row == ("cam-b1", "open", started, None)
    assert events == (1,)


def test_unknown_direction_is_dead_lettered_not_stored(world: tuple[ServerProcess, Edge, Edge, str]) -> None:
    server, edge_a, _, dsn = world
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    bad = counts(SITE_ID, "cam-a1", 1, t0, {("L1", "nosuchdirection", "car"): 4})
    good = counts(SITE_ID, "cam-a1", 2, t0 + timedelta(minutes=1), {("L1", "north", "car"): 3})
    assert edge_a.send(bad) and edge_a.send(good)
    poll(lambda: q1(dsn, "SELECT count(*) FROM count_bins WHERE camera_id = 'cam-a1'"), lambda n: n == 1)
    detail = q1(dsn, "SELECT detail FROM dead_letters WHERE msg_id = %s AND reason = 'unknown_name'",
                str(bad.msg_id))  # fmt: skip
    assert "nosuchdirection" in str(detail), server.log_tail()
    assert q1(dsn, "SELECT count(*) FROM counts WHERE direction = 'nosuchdirection'") == 0
    assert q1(dsn, "SELECT sum(count) FROM counts WHERE camera_id = 'cam-a1'") == 3
