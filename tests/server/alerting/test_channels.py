"""Each channel against a real peer: an HTTP receiver, an SMTP server, the shared Mosquitto."""

from __future__ import annotations

import asyncio
import json
import queue
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from citywatch.broker_auth import SERVER_USER, read_env_file, write_auth_files
from citywatch.site import parse_site
from server.alerting.channels import Channel, MqttChannel, SmtpChannel, WebhookChannel, alert_json
from server.alerting.errors import DeliveryError, SignatureError
from server.alerting.signing import sign, verify_signature
from tests.mosquitto import Broker, free_port
from tests.server.alerting.helpers import JPEG, make_alert
from tests.server.alerting.peers import MailHandler, WebhookReceiver, smtp_server, webhook_server

SECRET = "whsec-test-3f9a"


# --------------------------------------------------------------------------------------------------
# Signatures (pure)

BODY = b'{"kind":"alert"}'
TS = 1_800_000_000


@pytest.mark.parametrize(
    ("timestamp", "body", "signature", "now", "error"),
    [
        pytest.param(str(TS), BODY, sign(SECRET, TS, BODY), TS + 10, None, id="valid"),
        pytest.param(str(TS), BODY, sign(SECRET, TS, BODY), TS - 10, None, id="clock-skew-ok"),
        pytest.param(str(TS), BODY, sign(SECRET, TS, BODY), TS + 301, "from now", id="stale"),
        pytest.param(str(TS), BODY, sign(SECRET, TS, BODY), TS - 301, "from now", id="future"),
        pytest.param(str(TS), BODY + b" ", sign(SECRET, TS, BODY), TS, "does not match", id="body-changed"),
        pytest.param(str(TS + 1), BODY, sign(SECRET, TS, BODY), TS, "does not match", id="timestamp-changed"),
        pytest.param(str(TS), BODY, sign("other", TS, BODY), TS, "does not match", id="other-secret"),
        pytest.param(str(TS), BODY, sign(SECRET, TS, BODY)[7:], TS, "sha256=", id="no-scheme"),
        pytest.param("yesterday", BODY, sign(SECRET, TS, BODY), TS, "integer", id="bad-timestamp"),
    ],
)
def test_verify_signature(timestamp: str, body: bytes, signature: str, now: float, error: str | None) -> None:
    if error is None:
        verify_signature(SECRET, timestamp, body, signature, 300, now=now)
    else:
        with pytest.raises(SignatureError, match=error):
            verify_signature(SECRET, timestamp, body, signature, 300, now=now)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Independent of our code: the value a receiver computes with the documented recipe.
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == f"sha256={expected}"


def test_channels_satisfy_the_protocol() -> None:
    hook = WebhookChannel("hook", "http://127.0.0.1:9/", SecretStr("s"))
    mail = SmtpChannel("mail", "127.0.0.1", 25, "a@example.org", ["b@example.org"])
    assert isinstance(hook, Channel)
    assert isinstance(mail, Channel)
    asyncio.run(hook.aclose())


# --------------------------------------------------------------------------------------------------
# Webhook


@pytest.mark.integration
def test_webhook_delivers_signed_json() -> None:
    receiver = WebhookReceiver(SECRET)
    alert = make_alert()

    async def go(url: str) -> str:
        async with WebhookChannel("ops-hook", url, SecretStr(SECRET)) as hook:
            return (await hook.send(alert)).status

    with webhook_server(receiver) as url:
        assert asyncio.run(go(url)) == "200"
    [got] = receiver.received
    assert got.signature_ok, got.signature_error
    payload = json.loads(got.body)
    assert payload == alert.payload()
    assert payload["kind"] == "alert"
    assert payload["type"] == "wrong_way"
    assert payload["has_snapshot"] is True
    assert "snapshot_jpeg" not in payload
    assert got.headers["X-Citywatch-Alert-Id"] == str(alert.alert_id)
    assert abs(int(got.headers["X-Citywatch-Timestamp"]) - time.time()) < 60


@pytest.mark.integration
@pytest.mark.parametrize(
    ("secret", "script", "status", "retryable"),
    [
        pytest.param("wrong-secret", [200], "401", False, id="receiver-rejects-signature"),
        pytest.param(SECRET, [500], "500", True, id="server-error"),
        pytest.param(SECRET, [429], "429", True, id="rate-limited"),
        pytest.param(SECRET, [404], "404", False, id="not-found"),
    ],
)
def test_webhook_failures(secret: str, script: list[int | str], status: str, retryable: bool) -> None:
    receiver = WebhookReceiver(SECRET, script=script)

    async def go(url: str) -> None:
        async with WebhookChannel("ops-hook", url, SecretStr(secret)) as hook:
            await hook.send(make_alert())

    with webhook_server(receiver) as url, pytest.raises(DeliveryError) as info:
        asyncio.run(go(url))
    assert (info.value.status, info.value.retryable) == (status, retryable)
    assert len(receiver.received) == 1


@pytest.mark.integration
def test_webhook_timeout_is_a_retryable_failure() -> None:
    receiver = WebhookReceiver(SECRET, script=["hang"])

    async def go(url: str) -> None:
        async with WebhookChannel("ops-hook", url, SecretStr(SECRET), timeout_s=0.5) as hook:
            await hook.send(make_alert())

    with webhook_server(receiver) as url, pytest.raises(DeliveryError, match="timed out") as info:
        asyncio.run(go(url))
    assert info.value.retryable
    assert receiver.hanging.is_set()


# --------------------------------------------------------------------------------------------------
# SMTP


@pytest.mark.integration
def test_smtp_sends_text_and_a_link_to_the_snapshot() -> None:
    handler = MailHandler()
    alert = make_alert()
    alert = alert.model_copy(
        update={"snapshot_url": f"https://cw.example/api/v1/incidents/{alert.incident_id}/snapshot"}
    )
    with smtp_server(handler) as port:
        mail = SmtpChannel(
            "ops-mail",
            "127.0.0.1",
            port,
            "citywatch@example.org",
            ["ops@example.org", "duty@example.org"],
            security="none",
        )
        assert asyncio.run(mail.send(alert)).status == "250"
    [msg] = handler.messages
    assert handler.envelopes == [("citywatch@example.org", ["ops@example.org", "duty@example.org"])]
    assert msg["Subject"] == "citywatch [critical] wrong way at cam-a (line L1)"
    assert msg["X-Citywatch-Alert-Id"] == str(alert.alert_id)
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Trần Hưng Đạo" in text
    assert str(alert.incident_id) in text
    # Evidence policy (issue 12, item 9): a link to the audited snapshot route, never the image itself.
    assert not list(msg.iter_attachments())
    assert JPEG not in msg.as_bytes()
    assert f"/api/v1/incidents/{alert.incident_id}/snapshot" in text


@pytest.mark.integration
def test_smtp_without_snapshot_is_plain_text() -> None:
    handler = MailHandler()
    with smtp_server(handler) as port:
        mail = SmtpChannel("m", "127.0.0.1", port, "a@example.org", ["b@example.org"], security="none")
        asyncio.run(mail.send(make_alert(snapshot=False)))
    [msg] = handler.messages
    assert msg.get_content_type() == "text/plain"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("reply", "status", "retryable"),
    [
        pytest.param("550 5.7.1 relaying denied", "550", False, id="permanent"),
        pytest.param("451 4.3.0 try again later", "451", True, id="transient"),
    ],
)
def test_smtp_refusals(reply: str, status: str, retryable: bool) -> None:
    handler = MailHandler(reply=reply)
    with smtp_server(handler) as port:
        mail = SmtpChannel("m", "127.0.0.1", port, "a@example.org", ["b@example.org"], security="none")
        with pytest.raises(DeliveryError) as info:
            asyncio.run(mail.send(make_alert()))
    assert (info.value.status, info.value.retryable) == (status, retryable)
    assert handler.attempts == 1


@pytest.mark.integration
def test_smtp_starttls_against_a_server_without_it_fails() -> None:
    """STARTTLS is the default; a server that does not offer it is an error, never a plain-text send."""
    handler = MailHandler()
    with smtp_server(handler) as port:
        mail = SmtpChannel("m", "127.0.0.1", port, "a@example.org", ["b@example.org"])
        with pytest.raises(DeliveryError, match="STARTTLS") as info:
            asyncio.run(mail.send(make_alert()))
    assert not info.value.retryable
    assert handler.messages == []


# --------------------------------------------------------------------------------------------------
# MQTT


@pytest.mark.integration
def test_mqtt_republishes_on_the_alert_topic(mqtt_host_port: tuple[str, int], unique: str) -> None:
    host, port = mqtt_host_port
    prefix = f"cwtest{unique}"
    alert = make_alert(site_id="qn")
    received: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{unique}")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/alerts/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(True)
    sub.on_message = lambda c, u, m: received.put((m.topic, bytes(m.payload), m.qos))
    sub.connect(host, port)
    sub.loop_start()

    async def go() -> str:
        channel = MqttChannel("ops-mqtt", host, port, prefix, client_id=f"pub-{unique}")
        await channel.start()
        try:
            return (await channel.send(alert)).status
        finally:
            await channel.aclose()

    try:
        assert subscribed.get(timeout=10)
        assert asyncio.run(go()) == "Success"
        topic, payload, qos = received.get(timeout=10)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert topic == f"{prefix}/alerts/qn/wrong_way"
    assert qos == 1
    assert payload == alert_json(alert)
    assert json.loads(payload)["alert_id"] == str(alert.alert_id)


@pytest.mark.integration
def test_mqtt_send_while_disconnected_fails_fast(unique: str) -> None:
    channel = MqttChannel("ops-mqtt", "127.0.0.1", free_port(), f"cwtest{unique}", timeout_s=1)

    async def go() -> None:
        await channel.send(make_alert())

    with pytest.raises(DeliveryError, match="not connected"):
        asyncio.run(go())


@pytest.mark.integration
def test_mqtt_channel_under_the_generated_acl(tmp_path: Path, unique: str) -> None:
    """The server user may publish alerts; a refusal (an edge user) is final, not retried."""
    prefix = f"cwtest{unique}"
    cfg = parse_site(
        f"""
site: {{id: qn, name: Q, timezone: UTC, center: {{lat: 1, lon: 1}}}}
mqtt_prefix: {prefix}
cameras:
  - {{id: cam-a, name: A, location: {{lat: 1, lon: 1}}, group: centre, source: {{kind: webcam, index: 0}}}}
"""
    )
    env_file = tmp_path / ".env"
    files = write_auth_files(cfg, tmp_path / "auth", env_file, environ={})
    env = read_env_file(env_file)
    broker = Broker(
        tmp_path / "broker",
        f"password_file {files.passwd}\nacl_file {files.acl}\n",
        allow_anonymous=False,
    )
    broker.start()

    async def send_as(user: str, password: str) -> str:
        channel = MqttChannel(
            "alerts", "127.0.0.1", broker.port, prefix, username=user, password=SecretStr(password)
        )
        await channel.start()
        try:
            return (await channel.send(make_alert(site_id="qn"))).status
        finally:
            await channel.aclose()

    try:
        # Accepted (0x10 is a success code in MQTT v5 §3.4.2.1); the ACL grants no one alert reads yet.
        assert asyncio.run(send_as(SERVER_USER, env["MQTT_SERVER_PASSWORD"])) == "No matching subscribers"
        with pytest.raises(DeliveryError, match="Not authorized") as info:
            asyncio.run(send_as("edge-centre", env["MQTT_EDGE_CENTRE_PASSWORD"]))
        assert not info.value.retryable
    finally:
        broker.stop()
