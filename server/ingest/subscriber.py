"""The MQTT side: a paho-mqtt 2 client with a persistent session, QoS 1 and manual acknowledgement.

The paho callbacks only decode and enqueue (nothing slow runs on the network thread, which would trip
the keepalive). The broker holds every message we have not acknowledged; MQTT 5 "Receive Maximum"
(spec 3.1.2.11.3) should cap how many it sends before we acknowledge. The queue is bounded; when it is
full the callback waits up to OVERFLOW_WAIT_S (back-pressure through TCP), then counts the message and
leaves it unacknowledged, and the broker sends it again on the next connection (spec 4.4: unacknowledged
QoS 1 messages are resent when a session resumes).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract.topics import subscription
from server.ingest.validate import Incoming
from server.metrics import Metrics
from server.settings import Settings

log = logging.getLogger(__name__)

#: Longest time the network thread waits for room in the ingest queue (keepalive is 30 s).
OVERFLOW_WAIT_S = 5.0


class Subscriber:
    """Owns the paho client; messages arrive on :attr:`queue` tagged with the connection generation."""

    def __init__(
        self,
        settings: Settings,
        prefix: str,
        site_id: str,
        metrics: Metrics,
        *,
        kind: str | None = None,
        client_suffix: str = "",
    ) -> None:
        """Every contract message of the site, or only those of ``kind`` (the alert engine's own
        session, ``client_suffix`` appended to the client id and the shared-subscription group)."""
        self._settings = settings
        self._metrics = metrics
        base = subscription(prefix, site_id)
        if kind is not None:
            base = base.rsplit("/", 1)[0] + "/" + kind
        group = settings.mqtt_shared_group and settings.mqtt_shared_group + client_suffix
        # MQTT 5 shared subscription (spec 4.8.2): each message goes to one member of the group.
        self.topic_filter = f"$share/{group}/{base}" if group else base
        self.queue: queue.Queue[tuple[int, Incoming]] = queue.Queue(maxsize=settings.mqtt_receive_maximum * 2)
        # Incremented on every (re)connect: message ids (mid) are only valid on their own connection.
        self.generation = 0
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # set when the broker has confirmed the subscription
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id + client_suffix,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            self.client.username_pw_set(settings.mqtt_username, password)
        _, _, tls = settings.mqtt_host_port
        if tls:
            self.client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def start(self) -> None:
        host, port, _ = self._settings.mqtt_host_port
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._settings.mqtt_session_expiry_s
        props.ReceiveMaximum = self._settings.mqtt_receive_maximum
        # clean_start=False resumes the broker-side session: subscriptions and the queued messages.
        self.client.connect_async(host, port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        # A normal DISCONNECT keeps the session (its expiry was set at connect), so nothing is lost.
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def ack(self, generation: int, mid: int, qos: int) -> bool:
        """Acknowledge one message if it came on the current connection; False when it did not."""
        if qos == 0:
            return True
        with self._lock:
            if generation != self.generation or not self.connected.is_set():
                return False
        self.client.ack(mid, qos)
        return True

    # paho callbacks (network thread): no I/O beyond logging, no blocking.
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _props: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self.generation += 1
        log.info("connected to the broker (session present: %s)", getattr(flags, "session_present", "?"))
        self.connected.set()
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reason_codes: Any, _p: Any) -> None:
        failures = [rc for rc in reason_codes if rc.is_failure]
        if failures:
            log.error("subscription to %s refused: %s", self.topic_filter, failures[0])
            return
        log.info("subscribed to %s", self.topic_filter)
        self.subscribed.set()
        self._metrics.set_connected(True)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self._metrics.set_connected(False)
        log.warning("disconnected from the broker: %s", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._metrics.on_received()
        item = Incoming(msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time())
        try:
            # Full queue: wait briefly. Not reading the socket meanwhile is TCP back-pressure on the
            # broker, which is needed: Mosquitto 2.0 was seen sending far more than our Receive
            # Maximum once acknowledgements flow. Only after OVERFLOW_WAIT_S is the message dropped,
            # unacknowledged (redelivered on the next connection), well inside the keepalive.
            self.queue.put((self.generation, item), timeout=OVERFLOW_WAIT_S)
        except queue.Full:
            self._metrics.on_overflow()
            log.warning("ingest queue full: message mid=%d left unacknowledged for redelivery", msg.mid)
