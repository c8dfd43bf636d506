"""Alerting end to end: an incident published on the real broker reaches the real server (in-process,
with ingest and the alert engine), which raises one alert on each channel: a signed webhook to a local
receiver, an e-mail to a local aiosmtpd server, an MQTT republish and the WebSocket of a logged-in
police officer. Then: de-duplication, escalation when no one acknowledges, delivery records, the police
workflow through its states with the audit chain verifying, and a failing channel that blocks nothing."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.site import ConfigError, load_site
from contract import IncidentEvent
from server.app import create_app
from server.db.migrate import migrate
from server.settings import Settings
from tests.mosquitto import free_port
from tests.server.alerting.peers import MailHandler, WebhookReceiver, smtp_server, webhook_server
from tests.server.helpers import Publisher, incident, login, poll, write_site

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-0123456789abcdef"
ALERTING = """
alerting:
  sla: {{acknowledge_s: 60, resolve_s: 600}}
  channels:
    dispatch: {{kind: webhook, url: "{hook}", secret: "{secret}", timeout_s: 2}}
    duty-mail: {{kind: smtp, host: 127.0.0.1, port: {smtp}, sender: alerts@citywatch.test,
                recipients: [duty@police.test], security: none}}
    city-bus: {{kind: mqtt, prefix: {prefix}}}
    broken: {{kind: webhook, url: "http://127.0.0.1:{dead}/nothing", secret: "{secret}", timeout_s: 1}}
  rules:
    - id: wrong-way
      types: [wrong_way]
      channels: [live, dispatch, duty-mail, city-bus, broken]
      cooldown_s: 60
      escalation:
        - {{after_s: 2, channels: [dispatch]}}
"""


@dataclass
class Env:
    client: TestClient
    dsn: str
    prefix: str
    site_id: str
    hook: WebhookReceiver
    mail: MailHandler
    mqtt_alerts: list[dict[str, Any]]
    publisher: Publisher


@pytest.fixture(scope="module")
def env(
    fresh_db: str, tmp_path_factory: pytest.TempPathFactory, mqtt_host_port: tuple[str, int]
) -> Iterator[Env]:
    host, port = mqtt_host_port
    tag = uuid.uuid4().hex[:8]
    prefix, site_id = f"al{tag}", f"site{tag}"
    receiver, mail = WebhookReceiver(SECRET), MailHandler()
    dead = _closed_port()
    with webhook_server(receiver) as hook_url, smtp_server(mail) as smtp_port:
        folder = tmp_path_factory.mktemp("site")
        path = write_site(folder, site_id, prefix, ["cam-a", "cam-b"])
        path.write_text(
            path.read_text()
            + ALERTING.format(hook=hook_url, secret=SECRET, smtp=smtp_port, prefix=prefix, dead=dead)
        )
        site = load_site(path)
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            migrate(conn, site.site.timezone)
        settings = Settings.from_env(
            {
                "DATABASE_URL": fresh_db,
                "MQTT_URL": f"mqtt://{host}:{port}",
                "MQTT_CLIENT_ID": f"srv-{tag}",
                "MQTT_SESSION_EXPIRY_S": "120",
                "CITYWATCH_SITE": str(path),
            }
        )
        alerts: list[dict[str, Any]] = []
        sub = _subscribe(host, port, f"{prefix}/alerts/#", alerts)
        pub = Publisher(host, port, prefix)
        try:
            with TestClient(create_app(settings, site)) as client:
                yield Env(client, fresh_db, prefix, site_id, receiver, mail, alerts, pub)
        finally:
            pub.close()
            sub.loop_stop()
            sub.disconnect()


def _closed_port() -> int:
    return free_port()  # nothing listens there: connection refused, every attempt


def _subscribe(host: str, port: int, topic: str, into: list[dict[str, Any]]) -> mqtt.Client:
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"alerts-sub-{uuid.uuid4().hex[:6]}")
    c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
    c.on_subscribe = lambda *_: ready.set()
    c.on_message = lambda _c, _u, m: into.append(json.loads(m.payload))
    c.connect(host, port)
    c.loop_start()
    assert ready.wait(10), "alert subscriber did not subscribe"
    return c


def _deliveries(dsn: str, alert_id: str) -> list[tuple[str, int, bool, int]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT channel, attempt, ok, escalation_level FROM alert_deliveries WHERE alert_id = %s "
            "ORDER BY channel, escalation_level, attempt",
            (alert_id,),
        ).fetchall()


def test_one_incident_alerts_once_on_every_channel_then_escalates(env: Env) -> None:
    police = TestClient(env.client.app)
    token = login(police, env.dsn, "police")
    iid = uuid.uuid4()
    started = datetime.now(UTC)
    with env.client.websocket_connect("/api/v1/live/ws") as ws:
        ws.send_json({"type": "auth", "token": token})  # never in the URL (issue 12)
        assert ws.receive_json()["type"] == "snapshot"
        env.publisher.send(incident(env.site_id, "cam-a", 1, iid, IncidentEvent.START, started))
        # The edge repeats itself (an update), and another camera of the group sees the same driver.
        env.publisher.send(incident(env.site_id, "cam-a", 2, iid, IncidentEvent.UPDATE, started))
        env.publisher.send(incident(env.site_id, "cam-b", 1, uuid.uuid4(), IncidentEvent.START, started))
        live = None
        deadline = time.monotonic() + 20
        while live is None and time.monotonic() < deadline:
            msg = ws.receive_json()
            if msg["type"] == "alert":
                live = msg["alert"]
        assert live is not None, "no alert on the WebSocket"
        assert live["incident_id"] == str(iid) and live["type"] == "wrong_way"

    first = poll(lambda: list(env.hook.received), lambda r: len(r) >= 1)
    assert len(first) >= 1 and first[0].signature_ok, "webhook missing or its signature does not verify"
    body = json.loads(first[0].body)
    assert body["incident_id"] == str(iid) and body["escalation_level"] == 0 and body["kind"] == "alert"
    mail = poll(lambda: list(env.mail.messages), lambda m: len(m) >= 1)
    assert len(mail) == 1 and "wrong way" in str(mail[0]["Subject"])
    mq = poll(lambda: list(env.mqtt_alerts), lambda m: len(m) >= 1)
    assert [m["incident_id"] for m in mq] == [str(iid)]

    # Nobody acknowledges: the escalation step (after 2 s) sends to the dispatch webhook again.
    hooks = poll(lambda: list(env.hook.received), lambda r: len(r) >= 2, timeout=15)
    levels = [json.loads(h.body)["escalation_level"] for h in hooks]
    assert levels == [0, 1], levels
    time.sleep(1.5)
    assert len(env.hook.received) == 2, "an escalation step was sent twice, or the duplicate alerted"
    assert len(env.mail.messages) == 1 and len(env.mqtt_alerts) == 1

    with psycopg.connect(env.dsn) as conn:
        rows = conn.execute("SELECT alert_id, incident_id FROM alerts").fetchall()
    assert [r[1] for r in rows] == [iid], "exactly one alert for one event"
    alert_id = str(rows[0][0])
    recs = poll(
        lambda: _deliveries(env.dsn, alert_id),
        lambda d: {(c, lvl) for c, _, ok, lvl in d if ok} >= {("live", 0), ("dispatch", 0), ("duty-mail", 0)},
    )
    ok = {(c, lvl) for c, _, good, lvl in recs if good}
    assert ok >= {("live", 0), ("dispatch", 0), ("duty-mail", 0), ("city-bus", 0), ("dispatch", 1)}
    # The dead endpoint fails (recorded, retried) without holding anything else up.
    assert any(c == "broken" and not good for c, _, good, _ in recs)
    metrics = police.get("/metrics")
    assert metrics.status_code == 403  # police do not scrape
    ops = TestClient(env.client.app)
    login(ops, env.dsn, "operator")
    text = ops.get("/metrics").text
    assert "citywatch_alerts_raised_total 1" in text and "citywatch_alert_escalations_total 1" in text
    assert 'citywatch_alert_delivery_attempts_total{channel="dispatch",ok="true"} 2' in text


def test_police_workflow_and_audit_chain(env: Env) -> None:
    iid = uuid.uuid4()
    env.publisher.send(incident(env.site_id, "cam-b", 10, iid, IncidentEvent.START, datetime.now(UTC)))
    police = TestClient(env.client.app)
    login(police, env.dsn, "police")
    got = poll(lambda: police.get(f"/api/v1/incidents/{iid}"), lambda r: r.status_code == 200)
    assert got.status_code == 200, got.text
    assert got.json()["workflow_state"] == "new"
    assert got.json()["sla"]["ack_breached"] is False

    def act(action: str, **body: str) -> Any:
        return police.post(f"/api/v1/incidents/{iid}/{action}", json=body)

    assert act("resolve", note="").status_code == 422  # closing needs a note
    r = act("acknowledge", note="seen on camera")
    assert r.status_code == 200 and r.json()["workflow_state"] == "acknowledged"
    assert act("acknowledge", note="again").status_code == 409
    r = act("assign", assignee="Unit 7 (Quy Nhơn traffic police)", note="nearest unit")
    assert r.status_code == 200 and r.json()["assigned_to"].startswith("Unit 7")
    r = act("resolve", note="driver stopped and fined")
    assert r.status_code == 200 and r.json()["workflow_state"] == "resolved"
    assert act("false-alarm", note="late").status_code == 409  # closed is closed

    detail = police.get(f"/api/v1/incidents/{iid}").json()
    trail = [(a["actor"], a["action"]) for a in detail["audit"] if a["action"] != "evidence_view"]
    who = detail["acknowledged_by"]
    assert trail == [(who, "acknowledge"), (who, "assign"), (who, "resolve")]
    assert [a["details"]["note"] for a in detail["audit"] if a["action"] == "resolve"] == [
        "driver stopped and fined"
    ]
    assert any(a["action"] == "evidence_view" for a in detail["audit"])  # looking is recorded too

    admin = TestClient(env.client.app)
    login(admin, env.dsn, "admin")
    check = admin.get("/api/v1/audit/verify").json()
    assert check["ok"] is True and check["rows"] >= 5

    # An acknowledged incident does not escalate; SLA report counts it.
    now = datetime.now(UTC)  # a range within the SLA report's cap (CITYWATCH_HISTORY_MAX_DAYS)
    sla = police.get(
        "/api/v1/sla",
        params={"start": (now - timedelta(days=1)).isoformat(), "end": (now + timedelta(days=1)).isoformat()},
    ).json()
    assert sum(b["resolved"] for b in sla["bins"]) >= 1 and sla["targets"]["ack_s"] == 60

    # Tampering with the log at the database level is detected (the trigger has to be switched off
    # first: the table refuses UPDATE and DELETE).
    with psycopg.connect(env.dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE action = 'resolve'")
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        conn.execute("UPDATE audit_log SET details = '{\"note\": \"nothing\"}' WHERE action = 'assign'")
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
        bad_id = conn.execute("SELECT id FROM audit_log WHERE action = 'assign'").fetchone()
    check = admin.get("/api/v1/audit/verify").json()
    assert check["ok"] is False and bad_id is not None and check["first_bad_id"] == bad_id[0]


def test_rules_edited_by_admin_apply_at_once(env: Env) -> None:
    admin = TestClient(env.client.app)
    login(admin, env.dsn, "admin")
    operator = TestClient(env.client.app)
    login(operator, env.dsn, "operator")
    rules = admin.get("/api/v1/alerting/rules").json()["rules"]
    assert operator.put("/api/v1/alerting/rules", json=rules).status_code == 403
    bad = [{**rules[0], "channels": ["nowhere"]}]
    assert admin.put("/api/v1/alerting/rules", json=bad).status_code == 422
    off = [{**rules[0], "enabled": False}]
    assert admin.put("/api/v1/alerting/rules", json=off).status_code == 200
    before = len(env.hook.received)
    env.publisher.send(
        incident(env.site_id, "cam-a", 30, uuid.uuid4(), IncidentEvent.START, datetime.now(UTC))
    )
    time.sleep(3)
    assert len(env.hook.received) == before, "a disabled rule still alerted"
    assert admin.put("/api/v1/alerting/rules", json=rules).status_code == 200


def test_site_file_alerting_section_is_validated(tmp_path: Path) -> None:
    path = write_site(tmp_path, "s1", "p", ["cam-a"])
    path.write_text(path.read_text() + "alerting:\n  rules:\n    - {id: r1, channels: [pager]}\n")
    with pytest.raises(ConfigError, match="unknown channel"):
        load_site(path)
