"""The server's MQTT side of the fleet: edge announcements into the registry, configs out to the edges.

Its own paho client (``<client id>-fleet``): it reads ``<prefix>/edges/v1/<site>/+`` and publishes each
group's desired config retained on ``<prefix>/config/v1/<site>/<group>`` (contract/fleet.py). The
callbacks only enqueue; a thread stores announcements with its own database connection.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from contract.errors import ContractError
from contract.fleet import EdgeConfig, config_topic, dump, parse_announce
from contract.topics import MAJOR
from server.fleet.registry import record_announce
from server.settings import Settings

log = logging.getLogger(__name__)


class FleetBridge:
    def __init__(self, settings: Settings, site_id: str, prefix: str) -> None:
        self.site_id, self.prefix = site_id, prefix
        self._dsn = settings.database_url.get_secret_value()
        self._queue: queue.Queue[tuple[bytes, datetime] | None] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._run, name="fleet-bridge", daemon=True)
        self.connected = threading.Event()
        self.stored = 0  # announcements stored (tests, metrics)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id + "-fleet", protocol=mqtt.MQTTv5
        )
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            self.client.username_pw_set(settings.mqtt_username, password)
        self._host, self._port, tls = settings.mqtt_host_port
        if tls:
            self.client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message

    def start(self) -> None:
        self._thread.start()
        self.client.connect_async(self._host, self._port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        if reason_code.is_failure:
            log.error("fleet: broker refused the connection: %s", reason_code)
            return
        client.subscribe(f"{self.prefix}/edges/v{MAJOR}/{self.site_id}/+", qos=1)
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:
            try:
                self._queue.put_nowait((bytes(msg.payload), datetime.now(UTC)))
            except queue.Full:
                log.warning("fleet: announcement queue full; one dropped (the edge announces again)")

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while True:
            item = self._queue.get()
            if item is None:
                break
            payload, received = item
            try:
                msg = parse_announce(payload)
            except ContractError as exc:
                log.warning("fleet: bad announcement ignored: %s", exc)
                continue
            if msg.site_id != self.site_id:
                continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._dsn, autocommit=True)
                record_announce(conn, msg, received)
                self.stored += 1
            except psycopg.Error as exc:
                log.warning("fleet: storing an announcement failed: %s", exc)
                conn = None
                time.sleep(1.0)
        if conn is not None:
            conn.close()

    def publish(self, configs: list[EdgeConfig], timeout: float = 5.0) -> list[str]:
        """Publish configs retained at QoS 1; returns the groups whose publish was not confirmed."""
        # Started with connect_async: give the first connection a moment before publishing.
        self.connected.wait(timeout)
        pending = []
        for cfg in configs:
            topic = config_topic(self.site_id, cfg.group, self.prefix)
            pending.append((cfg.group, self.client.publish(topic, dump(cfg), qos=1, retain=True)))
        failed = []
        for group, info in pending:
            try:
                info.wait_for_publish(timeout)
                published = info.is_published()
            except (RuntimeError, ValueError):  # not connected (paho raises): reported below
                published = False
            if not published:
                failed.append(group)
        if failed:
            log.warning("fleet: config of %s not confirmed by the broker (kept; re-sent on start)", failed)
        return failed
