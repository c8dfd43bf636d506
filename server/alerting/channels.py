"""Alert channels: signed webhook, e-mail over SMTP, MQTT republish.

Each ``send`` returns a :class:`DeliveryResult` on success and raises
:class:`~server.alerting.errors.DeliveryError` (``retryable`` or not) on failure; retries and timeouts
belong to the dispatcher. Blocking libraries (smtplib, paho) run in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from server.alerting.alert import Alert
from server.alerting.errors import DeliveryError
from server.alerting.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """A successful delivery: the peer's status (HTTP code, SMTP reply, MQTT reason) and a note."""

    status: str
    detail: str = ""


@runtime_checkable
class Channel(Protocol):
    """Something that delivers an alert; ``name`` is what alert rules refer to."""

    @property
    def name(self) -> str: ...

    async def send(self, alert: Alert) -> DeliveryResult: ...


def alert_json(alert: Alert) -> bytes:
    """The alert's wire body: compact UTF-8 JSON of :meth:`Alert.payload`."""
    return json.dumps(alert.payload(), separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------------------------------
# Webhook

# 408 and 429 are the peer asking to come back later; every other 4xx is our request being wrong.
_RETRYABLE_HTTP = {408, 425, 429}


class WebhookChannel:
    """POSTs the alert JSON, signed (see :mod:`server.alerting.signing`)."""

    def __init__(
        self,
        name: str,
        url: str,
        secret: SecretStr,
        *,
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._url = url
        self._secret = secret
        self._timeout = httpx.Timeout(timeout_s)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._clock = clock

    @property
    def name(self) -> str:
        return self._name

    async def send(self, alert: Alert) -> DeliveryResult:
        body = alert_json(alert)
        ts = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "citywatch-alerts/1",
            "X-Citywatch-Alert-Id": str(alert.alert_id),
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self._secret.get_secret_value(), ts, body),
        }
        try:
            response = await self._client.post(
                self._url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(self._name, f"timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(self._name, f"request failed: {exc!r}") from exc
        code = response.status_code
        if 200 <= code < 300:
            return DeliveryResult(str(code))
        raise DeliveryError(
            self._name,
            f"HTTP {code}",
            status=str(code),
            retryable=code >= 500 or code in _RETRYABLE_HTTP,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


# --------------------------------------------------------------------------------------------------
# E-mail


class SmtpChannel:
    """Sends a plain-text e-mail (with a link to the snapshot, never the snapshot itself) via stdlib
    smtplib in a thread."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        security: Literal["none", "starttls", "tls"] = "starttls",
        username: str | None = None,
        password: SecretStr | None = None,
        timeout_s: float = 20.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("an SMTP channel needs at least one recipient")
        self._name = name
        self._host, self._port = host, port
        self._sender = sender
        self._recipients = list(recipients)
        self._security = security
        self._username, self._password = username, password
        self._timeout_s = timeout_s
        self._ssl = ssl_context or ssl.create_default_context()

    @property
    def name(self) -> str:
        return self._name

    def message(self, alert: Alert) -> EmailMessage:
        """The e-mail for ``alert`` (public so receivers' formatting can be checked without a server)."""
        msg = EmailMessage()
        msg["Subject"] = f"citywatch {alert.title()}"
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._recipients)
        msg["X-Citywatch-Alert-Id"] = str(alert.alert_id)
        lines = [
            alert.summary or alert.title(),
            "",
            f"Type:      {alert.type.value}",
            f"Severity:  {alert.severity.value}",
            f"Site:      {alert.site_id}",
            f"Camera:    {alert.camera_id} (group {alert.camera_group})",
        ]
        if alert.zone_id:
            lines.append(f"Zone:      {alert.zone_id}")
        if alert.line_id:
            lines.append(f"Line:      {alert.line_id}")
        lines += [
            f"Started:   {alert.started_at.isoformat()}",
            f"Rule:      {alert.rule_id}"
            + (f" (escalation {alert.escalation_level})" if alert.escalation_level else ""),
            f"Incident:  {alert.incident_id}",
            f"Alert:     {alert.alert_id}",
        ]
        if alert.latitude is not None and alert.longitude is not None:
            lines.append(f"Position:  {alert.latitude:.6f}, {alert.longitude:.6f}")
        if alert.snapshot_url:
            lines.append(f"Snapshot:  {alert.snapshot_url}")
        if alert.clip_url:
            lines.append(f"Video:     {alert.clip_url}")
        msg.set_content("\n".join(lines) + "\n")
        # Evidence policy (docs/security.md): the snapshot is never attached. E-mail crosses mail servers
        # that keep copies outside the audit log; the link above needs a login and every opening of it
        # is audited, like every other look at evidence.
        return msg

    def _deliver(self, msg: EmailMessage) -> str:
        smtp: smtplib.SMTP
        if self._security == "tls":
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout_s, context=self._ssl)
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        with smtp:
            if self._security == "starttls":
                smtp.starttls(context=self._ssl)
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password.get_secret_value())
            refused = smtp.send_message(msg, self._sender, self._recipients)
        if refused:
            # Some recipients took it; retrying would send the others a duplicate.
            log.warning("%s: %d recipient(s) refused the alert", self._name, len(refused))
            return f"250 ({len(refused)} of {len(self._recipients)} recipients refused)"
        return "250"

    async def send(self, alert: Alert) -> DeliveryResult:
        msg = self.message(alert)
        try:
            status = await asyncio.to_thread(self._deliver, msg)
        except smtplib.SMTPResponseException as exc:
            # RFC 5321 4.2.1: 4yz is transient, 5yz permanent.
            raise DeliveryError(
                self._name, f"SMTP {exc.smtp_code}", status=str(exc.smtp_code), retryable=exc.smtp_code < 500
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise DeliveryError(
                self._name,
                f"all recipients refused ({', '.join(map(str, codes))})",
                status=str(codes[-1]) if codes else None,
                retryable=all(code < 500 for code in codes),
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # e.g. no STARTTLS offered: a configuration mismatch that retrying cannot fix.
            raise DeliveryError(self._name, f"SMTP server lacks a feature: {exc}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(self._name, f"SMTP failed: {type(exc).__name__}: {exc}") from exc
        return DeliveryResult(status)


# --------------------------------------------------------------------------------------------------
# MQTT


class MqttChannel:
    """Republishes the alert JSON on ``<prefix>/alerts/<site>/<type>`` at QoS 1.

    One paho client with its own network thread; :meth:`start` connects (and paho reconnects), ``send``
    publishes and waits for the PUBACK in a worker thread. MQTT v5, so a broker refusal (ACL) comes back
    as a PUBACK reason code instead of a silent drop.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        prefix: str,
        *,
        username: str | None = None,
        password: SecretStr | None = None,
        tls: ssl.SSLContext | None = None,
        client_id: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self._name = name
        self._host, self._port = host, port
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._connected = threading.Event()
        self._acks: dict[int, ReasonCode] = {}
        self._acked = threading.Condition()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self._client.username_pw_set(username, password.get_secret_value() if password else None)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.reconnect_delay_set(1, 30)

    @property
    def name(self) -> str:
        return self._name

    def topic(self, alert: Alert) -> str:
        return f"{self._prefix}/alerts/{alert.site_id}/{alert.type.value}"

    # Callbacks run on paho's network thread: record and notify only.
    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: Properties | None
    ) -> None:
        if rc.is_failure:
            log.warning("%s: broker refused the connection: %s", self._name, rc)
        else:
            self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: Properties | None
    ) -> None:
        self._connected.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode, props: Properties | None
    ) -> None:
        with self._acked:
            self._acks[mid] = rc
            self._acked.notify_all()

    async def start(self, wait_s: float = 10.0) -> None:
        """Connect and start paho's thread; raise :class:`DeliveryError` if not connected in ``wait_s``."""
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, wait_s):
            raise DeliveryError(
                self._name, f"not connected to {self._host}:{self._port} after {wait_s:.0f} s"
            )

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _publish(self, topic: str, body: bytes) -> ReasonCode:
        if not self._connected.is_set():
            raise DeliveryError(self._name, "not connected to the broker")
        info = self._client.publish(topic, body, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DeliveryError(self._name, f"publish failed: {mqtt.error_string(info.rc)}")
        with self._acked:
            if not self._acked.wait_for(lambda: info.mid in self._acks, timeout=self._timeout_s):
                raise DeliveryError(self._name, f"no PUBACK within {self._timeout_s:.0f} s")
            return self._acks.pop(info.mid)

    async def send(self, alert: Alert) -> DeliveryResult:
        rc = await asyncio.to_thread(self._publish, self.topic(alert), alert_json(alert))
        if rc.is_failure:
            # "Not authorized" will not change on retry; other failures (quota, server busy) may.
            raise DeliveryError(
                self._name, f"broker refused: {rc}", status=str(rc), retryable=rc.value != 0x87
            )
        return DeliveryResult(str(rc))
