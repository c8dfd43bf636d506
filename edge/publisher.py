"""MQTT publishing from the outbox: QoS 1, in order; retained status + last will.

One MQTT connection per camera, so that each camera has its own last will (a retained ``offline`` on
its status topic, published by the broker when the connection dies). paho's callbacks only record and
enqueue; the outbox is read and written on this class's own thread.

When a message leaves the outbox:
- ``confirm=True`` (the default, end to end): when the server confirms its seq on the camera's
  confirmation topic (:mod:`contract.acks`). A PUBACK only means the broker took it; Mosquitto saves
  its store every ``autosave_interval``, so a broker crash can lose acknowledged messages, which are
  then sent again: after every reconnect everything unconfirmed is re-sent, and so is anything still
  unconfirmed after ``resend_after_s`` (a server session that was lost).
- ``confirm=False``: on the broker's PUBACK (for a broker without a citywatch server behind it).

Re-sent messages are harmless: the server stores by ``msg_id`` and confirms duplicates too.

A confirmation is believed only for this camera of this site and only up to the highest seq this
publisher has actually sent: anyone who can publish on the confirmation topic (a leaked server broker
password, a broker misconfiguration) cannot make the edge drop data the server never received. A
range beyond what was sent is cut at that seq and counted in ``refused_confirmations``.
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

from contract.acks import parse_ack
from contract.errors import ContractError
from contract.messages import StatusMessage, dump_message
from contract.topics import ack_topic, topic_for
from edge.outbox import Outbox
from edge.settings import MqttSettings

log = logging.getLogger(__name__)


class CameraPublisher(threading.Thread):
    def __init__(
        self,
        outbox: Outbox,
        mqtt_settings: MqttSettings,
        site_id: str,
        edge_id: str,
        camera_id: str,
        prefix: str,
        offline_status: StatusMessage,
        inflight: int = 20,
        confirm: bool = True,
        resend_after_s: float = 300.0,
    ) -> None:
        super().__init__(name=f"publish-{camera_id}", daemon=True)
        self.outbox = outbox
        self.camera_id = camera_id
        self.site_id = site_id
        self.inflight_max = inflight
        self.status_topic = topic_for(site_id, camera_id, "status", prefix)
        self.confirm = confirm
        self.ack_topic = ack_topic(site_id, camera_id, prefix)
        self._resend_after_s = resend_after_s
        self._last_resend = time.monotonic()
        self._confirmations: queue.SimpleQueue[list[tuple[int, int]]] = queue.SimpleQueue()
        self.confirmed = 0
        self.resends = 0
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._gen = 0
        self._inflight: dict[tuple[int, int], int] = {}  # (generation, mid) -> outbox row id
        self._last_sent = 0
        self._max_sent_seq = 0  # the highest seq published so far: nothing beyond it can be confirmed
        self.refused_confirmations = 0
        self._status: StatusMessage | None = None
        self.connected = False
        self.published = 0
        self.connects = 0

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{edge_id}-{camera_id}"[:64],
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if mqtt_settings.username:
            secret = mqtt_settings.password.get_secret_value() if mqtt_settings.password else None
            client.username_pw_set(mqtt_settings.username, secret)
        if mqtt_settings.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.status_topic, dump_message(offline_status), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._settings = mqtt_settings

    # -- paho callbacks (network thread): record and wake, nothing slow ----------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("camera %s: broker refused the connection: %s", self.camera_id, reason_code)
            return
        with self._lock:
            self.connected = True
            self.connects += 1
            self._last_sent = 0  # re-send everything not yet acknowledged
            status = self._status
        if self.confirm:
            client.subscribe(self.ack_topic, qos=1)  # a clean session: subscribe on every connect
        if status is not None:
            client.publish(self.status_topic, dump_message(status), qos=1, retain=True)
        log.info("camera %s: connected to the broker", self.camera_id)
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._lock:
            if self.connected and not self._stop_event.is_set():
                log.warning("camera %s: disconnected from the broker (%s)", self.camera_id, reason_code)
            self.connected = False
            self._gen += 1
            self._inflight.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        self._acks.put((self._gen, mid))
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            ack = parse_ack(bytes(msg.payload))
        except ContractError as exc:
            log.warning("camera %s: ignoring a malformed confirmation: %s", self.camera_id, exc)
            return
        if ack.camera_id != self.camera_id or ack.site_id != self.site_id:
            self.refused_confirmations += 1
            log.warning("camera %s: ignoring a confirmation for %s/%s", self.camera_id, ack.site_id,
                        ack.camera_id)  # fmt: skip
            return
        with self._lock:
            sent = self._max_sent_seq
        accepted = [(first, min(last, sent)) for first, last in ack.seqs if first <= sent]
        if len(accepted) != len(ack.seqs) or any(last > sent for _, last in ack.seqs):
            self.refused_confirmations += 1
            log.warning("camera %s: a confirmation reaches beyond seq %d, the last one sent; cut there",
                        self.camera_id, sent)  # fmt: skip
        if accepted:
            self._confirmations.put(accepted)
            self._wake.set()

    # -- API -----------------------------------------------------------------------------------------
    def set_status(self, status: StatusMessage) -> None:
        """Publish a retained status now if connected, and again after every reconnect."""
        with self._lock:
            self._status = status
            connected = self.connected
        if connected:
            self._client.publish(self.status_topic, dump_message(status), qos=1, retain=True)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, final_status: StatusMessage | None = None, drain_s: float = 5.0) -> None:
        """Try to deliver what is queued for up to ``drain_s``, publish the final status, disconnect."""
        deadline = time.monotonic() + drain_s
        while self.connected and self.outbox.depth(self.camera_id) > 0 and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.1)
        if final_status is not None and self.connected:
            info = self._client.publish(self.status_topic, dump_message(final_status), qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
        self._stop_event.set()
        self._wake.set()
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- the thread ----------------------------------------------------------------------------------
    def run(self) -> None:
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive
        )
        self._client.loop_start()
        while not self._stop_event.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._drain_acks()
                self._apply_confirmations()
                self._maybe_resend()
                self._send_more()
            except Exception:  # keep publishing whatever one bad step did
                log.exception("camera %s: publisher step failed", self.camera_id)
                self._stop_event.wait(1.0)
        self._drain_acks()

    def _apply_confirmations(self) -> None:
        while True:
            try:
                seq_ranges = self._confirmations.get_nowait()
            except queue.Empty:
                return
            self.confirmed += self.outbox.confirm(self.camera_id, seq_ranges)

    def _maybe_resend(self) -> None:
        """Unconfirmed for too long while connected (the server never got them): send them again."""
        if not self.confirm or time.monotonic() - self._last_resend < self._resend_after_s:
            return
        self._last_resend = time.monotonic()
        if self.outbox.oldest_age_s(self.camera_id) > self._resend_after_s:
            with self._lock:
                if self.connected and not self._inflight:
                    self._last_sent = 0
                    self.resends += 1
                    log.info("camera %s: re-sending messages unconfirmed for over %.0f s", self.camera_id,
                             self._resend_after_s)  # fmt: skip

    def _drain_acks(self) -> None:
        done: list[int] = []
        with self._lock:
            while True:
                try:
                    key = self._acks.get_nowait()
                except queue.Empty:
                    break
                row_id = self._inflight.pop(key, None)
                if row_id is not None:
                    done.append(row_id)
        if not self.confirm:
            self.outbox.delete(done)  # the broker has it: that is all this mode promises
        self.published += len(done)

    def _send_more(self) -> None:
        with self._lock:
            if not self.connected:
                return
            room = self.inflight_max - len(self._inflight)
            after = self._last_sent
        if room <= 0:
            return
        for row in self.outbox.peek(self.camera_id, after, room):
            with self._lock:
                if not self.connected:
                    return
                info = self._client.publish(row.topic, row.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # the connection just went; the next connect re-sends from the outbox
                self._inflight[(self._gen, info.mid)] = row.id
                self._last_sent = row.id
                if row.seq is not None and row.seq > self._max_sent_seq:
                    self._max_sent_seq = row.seq
