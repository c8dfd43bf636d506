"""The alert engine: incident messages from the broker -> rules -> one alert per event -> channels.

It has its own MQTT session (``<client id>-alerts``, incident topics only), so an alert never waits
behind a backlog of count messages in ingest. A message is acknowledged once its alert rows are
committed; delivery then runs as tasks, each channel with its own retries (``Dispatcher``), every
attempt recorded in ``alert_deliveries``. De-duplication is in the database (a unique row per rule and
incident, a cooldown per dedup key under an advisory lock), so it holds across restarts and across
several server instances. Escalation: a ticker finds unacknowledged alerts whose steps are due and
claims each step with a conditional UPDATE before sending it (one instance sends it).

Everything runs on one event loop in its own thread; the ingest path never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from citywatch.alerting import (
    LIVE_CHANNEL,
    AlertRule,
    MqttChannelConfig,
    SmtpChannelConfig,
    WebhookChannelConfig,
)
from citywatch.site import SiteConfig
from contract.messages import IncidentMessage, Severity
from server.alerting.alert import Alert
from server.alerting.channels import Channel, DeliveryResult, MqttChannel, SmtpChannel, WebhookChannel
from server.alerting.dispatcher import DeliveryAttempt, Dispatcher, RetryPolicy
from server.alerting.rules import AlertingConfig, dedup_key, due_escalations, match
from server.ingest.subscriber import Subscriber
from server.ingest.validate import Accepted, Incoming, Validator
from server.ingest.writer import LIVE_CHANNEL as NOTIFY_CHANNEL
from server.metrics import Metrics
from server.settings import Settings

log = logging.getLogger(__name__)

#: Largest NOTIFY payload PostgreSQL takes is 8000 bytes; alerts are far smaller, but be safe.
_NOTIFY_MAX = 7900


class LiveChannel:
    """Pushes the alert to every server instance's WebSocket clients (map, police console) by NOTIFY."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @property
    def name(self) -> str:
        return LIVE_CHANNEL

    async def send(self, alert: Alert) -> DeliveryResult:
        body = json.dumps({"alert": alert.payload()}, separators=(",", ":"), ensure_ascii=False)
        if len(body.encode()) > _NOTIFY_MAX:
            body = json.dumps({"alert": {**alert.payload(), "summary": alert.summary[:200]}})
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, body))
        return DeliveryResult(status="notified")


def build_channels(settings: Settings, site: SiteConfig, pool: AsyncConnectionPool[Any]) -> list[Channel]:
    """The site's configured channels plus ``live``."""
    host, port, tls = settings.mqtt_host_port
    channels: list[Channel] = [LiveChannel(pool)]
    for name, cfg in site.alerting.channels.items():
        if isinstance(cfg, WebhookChannelConfig):
            channels.append(WebhookChannel(name, cfg.url, cfg.secret, timeout_s=cfg.timeout_s))
        elif isinstance(cfg, SmtpChannelConfig):
            channels.append(
                SmtpChannel(
                    name,
                    cfg.host,
                    cfg.port,
                    cfg.sender,
                    cfg.recipients,
                    security=cfg.security,
                    username=cfg.username,
                    password=cfg.password,
                )
            )
        elif isinstance(cfg, MqttChannelConfig):
            import ssl  # noqa: PLC0415 - only for a TLS broker

            channels.append(
                MqttChannel(
                    name,
                    host,
                    port,
                    cfg.prefix,
                    username=settings.mqtt_username,
                    password=settings.mqtt_password,
                    tls=ssl.create_default_context() if tls else None,
                    client_id=f"{settings.mqtt_client_id}-alerts-{name}",
                )
            )
    return channels


class AlertEngine:
    """See the module docs. ``start``/``stop`` from any thread; ``reload`` after rules change."""

    def __init__(
        self,
        settings: Settings,
        site: SiteConfig,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._arrived: dict[UUID, float] = {}  # alert id -> when its incident message arrived
        self.site = site
        self._policy = policy or RetryPolicy()
        self._groups = {c.id: c.group for c in site.cameras}
        self._config = AlertingConfig(timezone=site.site.timezone, rules=site.alerting.rules)
        self._validator = Validator(site, settings.max_future_s, settings.max_age_days)
        self.subscriber = Subscriber(
            settings, site.mqtt_prefix, site.site.id, Metrics(), kind="incident", client_suffix="-alerts"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._thread_main, name="citywatch-alerts", daemon=True)
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def rules(self) -> AlertingConfig:
        return self._config

    def start(self, wait_s: float = 15.0) -> None:
        self._thread.start()
        self.subscriber.start()
        if not self._ready.wait(wait_s):
            log.warning("alert engine: not ready after %.0f s (database?); it keeps trying", wait_s)

    def stop(self, timeout: float = 10.0) -> None:
        self.subscriber.stop()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)

    def reload(self, rules: list[AlertRule]) -> None:
        """Replace the rules (the admin API stored new ones)."""
        self._config = AlertingConfig(timezone=self.site.site.timezone, rules=rules)

    # --- the loop ------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        dsn = self.settings.database_url.get_secret_value()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn, open=False, min_size=1, max_size=4, kwargs={"autocommit": True}
        )
        await pool.open(wait=False)
        channels = build_channels(self.settings, self.site, pool)
        for ch in channels:
            if isinstance(ch, MqttChannel):
                try:
                    await ch.start()
                except Exception as exc:  # paho keeps reconnecting; sends fail (recorded) until then
                    log.warning("alert channel %s: broker not reached yet: %s", ch.name, exc)
        dispatcher = Dispatcher(channels, lambda a: self._record(pool, a), self._policy)
        await self._load_rules(pool)
        self._ready.set()
        workers = [
            asyncio.create_task(self._consume(pool, dispatcher), name="alerts-consume"),
            asyncio.create_task(self._escalate(pool, dispatcher), name="alerts-escalate"),
            asyncio.create_task(self._refresh_rules(pool), name="alerts-rules"),
        ]
        await self._stopping.wait()
        for t in workers:
            t.cancel()
        if self._tasks:  # let deliveries in flight finish their current attempt, briefly
            await asyncio.wait(self._tasks, timeout=5.0)
        for t in [*workers, *self._tasks]:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for ch in channels:
            close = getattr(ch, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        await pool.close()

    async def _load_rules(self, pool: AsyncConnectionPool[Any]) -> None:
        """Rules stored by an admin (alert_rules) win over the site file's."""
        try:
            async with pool.connection(timeout=5.0) as conn:
                cur = await conn.execute("SELECT rules FROM alert_rules WHERE id = 1")
                row = await cur.fetchone()
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("alert engine: could not read stored rules (%s)", type(exc).__name__)
            return
        if row is not None:
            try:
                self._config = AlertingConfig(timezone=self.site.site.timezone, rules=row[0])
            except ValueError:
                log.exception("alert engine: stored rules are invalid; keeping the current ones")

    async def _refresh_rules(self, pool: AsyncConnectionPool[Any]) -> None:
        while True:  # other instances' admin edits reach this one within 10 s
            await asyncio.sleep(10.0)
            await self._load_rules(pool)

    async def _consume(self, pool: AsyncConnectionPool[Any], dispatcher: Dispatcher) -> None:
        q = self.subscriber.queue
        while True:
            try:
                generation, item = await asyncio.to_thread(q.get, True, 0.5)
            except queue.Empty:
                continue
            await self._handle(pool, dispatcher, item)
            self.subscriber.ack(generation, item.mid, item.qos)

    async def _handle(self, pool: AsyncConnectionPool[Any], dispatcher: Dispatcher, item: Incoming) -> None:
        checked = self._validator.check(item)
        if not isinstance(checked, Accepted) or not isinstance(checked.message, IncidentMessage):
            return  # ingest records it as a dead letter; nothing to alert on
        incident = checked.message
        group = self._groups.get(incident.camera_id, "default")
        delay = 0.5
        while True:
            try:
                alerts = await self._raise(pool, incident, group, item.received)
                break
            except (psycopg.Error, TimeoutError) as exc:
                # Unacknowledged until stored: the message waits with us, and the broker keeps it.
                log.warning("alert engine: database unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        for alert, rule in alerts:
            self._spawn(dispatcher.dispatch(alert, rule.channels))

    async def _raise(
        self, pool: AsyncConnectionPool[Any], incident: IncidentMessage, group: str, received: float
    ) -> list[tuple[Alert, AlertRule]]:
        now = datetime.now(UTC)
        raised: list[tuple[Alert, AlertRule]] = []
        for rule in match(self._config, incident, group, now):
            key = "|".join(dedup_key(rule, incident, group))
            async with pool.connection(timeout=5.0) as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
                cur = await conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM alerts WHERE rule_id = %s AND incident_id = %s), "
                    "EXISTS (SELECT 1 FROM alerts WHERE rule_id = %s AND dedup_key = %s AND raised_at > %s)",
                    (
                        rule.id,
                        incident.incident_id,
                        rule.id,
                        key,
                        now - timedelta(seconds=rule.cooldown_s),
                    ),
                )
                row = await cur.fetchone()
                if row is None or row[0] or row[1]:
                    continue  # the same incident again, or the same event seen by another camera
                snapshot_url = None
                if incident.snapshot is not None:
                    snapshot_url = (
                        f"{self.settings.public_url}/api/v1/incidents/{incident.incident_id}/snapshot"
                    )
                # Edges record a clip of every critical incident (edge/evidence.py); link it.
                clip_url = (
                    f"{self.settings.public_url}/api/v1/incidents/{incident.incident_id}/clip"
                    if incident.severity is Severity.CRITICAL
                    else None
                )
                alert = Alert.from_incident(
                    incident,
                    rule_id=rule.id,
                    camera_group=group,
                    raised_at=now,
                    snapshot_url=snapshot_url,
                    clip_url=clip_url,
                )
                await conn.execute(
                    "INSERT INTO alerts (alert_id, incident_id, rule_id, dedup_key, camera_id, raised_at, "
                    "payload) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        alert.alert_id,
                        incident.incident_id,
                        rule.id,
                        key,
                        incident.camera_id,
                        now,
                        Jsonb(alert.model_dump(mode="json", exclude={"snapshot_jpeg"})),
                    ),
                )
            self.metrics.on_alert()
            self._arrived[alert.alert_id] = received
            log.info("alert %s: rule %s, incident %s", alert.alert_id, rule.id, incident.incident_id)
            raised.append((alert, rule))
        return raised

    async def _escalate(self, pool: AsyncConnectionPool[Any], dispatcher: Dispatcher) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._escalate_once(pool, dispatcher)
            except (psycopg.Error, TimeoutError) as exc:
                log.warning("alert engine: escalation check failed (%s)", type(exc).__name__)

    async def _escalate_once(self, pool: AsyncConnectionPool[Any], dispatcher: Dispatcher) -> None:
        rules = {r.id: r for r in self._config.rules if r.escalation}
        if not rules:
            return
        horizon = max(s.after_s for r in rules.values() for s in r.escalation)
        now = datetime.now(UTC)
        async with pool.connection(timeout=5.0) as conn:
            cur = await conn.execute(
                "SELECT a.alert_id, a.rule_id, a.raised_at, a.escalation_levels, a.payload "
                "FROM alerts a LEFT JOIN incidents i USING (incident_id) "
                "WHERE a.rule_id = ANY(%s) AND COALESCE(i.workflow_state, 'new') = 'new' "
                "AND a.raised_at > %s",
                (list(rules), now - timedelta(seconds=horizon + 3600)),
            )
            rows = await cur.fetchall()
            for alert_id, rule_id, raised_at, levels, payload in rows:
                due = due_escalations(rules[rule_id], raised_at, now, acknowledged=False, sent_levels=levels)
                for level, step in due:
                    claimed = await conn.execute(
                        "UPDATE alerts SET escalation_levels = array_append(escalation_levels, %s) "
                        "WHERE alert_id = %s AND NOT (%s = ANY(escalation_levels)) RETURNING 1",
                        (level, alert_id, level),
                    )
                    if await claimed.fetchone() is None:
                        continue  # another instance sent it
                    alert = Alert.model_validate({**payload, "escalation_level": level})
                    self.metrics.on_alert(escalation=True)
                    log.info("alert %s: escalation level %d to %s", alert_id, level, step.channels)
                    self._spawn(dispatcher.dispatch(alert, step.channels))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, pool: AsyncConnectionPool[Any], a: DeliveryAttempt) -> None:
        arrived = self._arrived.get(a.alert_id) if a.escalation_level == 0 else None
        self.metrics.on_alert_attempt(a.channel, a.ok, None if arrived is None else time.time() - arrived)
        if a.final and a.escalation_level == 0 and len(self._arrived) > 10_000:
            self._arrived.clear()  # bounded; only the latency histogram loses a few samples
        async with pool.connection(timeout=5.0) as conn:
            await conn.execute(
                "INSERT INTO alert_deliveries (alert_id, escalation_level, channel, attempt, ok, status, "
                "error, duration_ms, at, final) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    a.alert_id,
                    a.escalation_level,
                    a.channel,
                    a.attempt,
                    a.ok,
                    a.status,
                    a.error,
                    a.duration_s * 1000.0,
                    a.at,
                    a.final,
                ),
            )
