"""End-to-end confirmation at the edge, against a real private Mosquitto: a PUBACK does not free a
message, the server's confirmation does; after a broker crash everything unconfirmed is sent again,
so messages the broker acknowledged and then lost are not lost."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract import CountsMessage, StatusMessage, StreamState, parse_message
from contract.acks import AckMessage, ranges
from contract.topics import ack_topic, topic_for
from edge.outbox import Outbox
from edge.publisher import CameraPublisher
from edge.settings import MqttSettings
from tests.mosquitto import Broker

pytestmark = pytest.mark.integration
SITE, CAM = "s1", "cam-1"


class Collector:
    def __init__(self, port: int, prefix: str) -> None:
        self.seqs: list[int] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"col-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/v1/{SITE}/{CAM}/counts", qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.seqs.append(parse_message(bytes(msg.payload)).seq)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(pred: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _counts(seq: int) -> CountsMessage:
    start = datetime(2026, 11, 27, tzinfo=UTC) + timedelta(minutes=seq)
    return CountsMessage(
        msg_id=uuid.uuid4(), site_id=SITE, edge_id="e1", camera_id=CAM, seq=seq, ts=datetime.now(UTC),
        bin_start=start, bin_end=start + timedelta(minutes=1), lines=[], frames=1, fps=1.0,
    )  # fmt: skip


def test_only_the_servers_confirmation_frees_a_message(tmp_path: Path, unique: str) -> None:
    prefix = f"cf{unique}"
    broker = Broker(tmp_path / "broker")
    broker.start()
    outbox = Outbox(tmp_path / "o.sqlite3")
    offline = StatusMessage(
        msg_id=uuid.uuid4(), site_id=SITE, edge_id="e1", camera_id=CAM, seq=0, ts=datetime.now(UTC),
        state=StreamState.OFFLINE,
    )  # fmt: skip
    pub = CameraPublisher(
        outbox, MqttSettings(port=broker.port), SITE, "e1", CAM, prefix, offline_status=offline, confirm=True
    )
    collector = Collector(broker.port, prefix)
    server = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"srv-{unique}")
    server.connect("127.0.0.1", broker.port)
    server.loop_start()
    pub.start()
    try:
        topic = topic_for(SITE, CAM, "counts", prefix)
        for _ in range(10):
            outbox.put(CAM, topic, _counts)
        pub.wake()
        assert _wait(lambda: sorted(collector.seqs) == list(range(1, 11)))
        assert _wait(lambda: pub.published == 10)
        assert outbox.depth(CAM) == 10, "a PUBACK alone must not free a message"

        def confirm(seqs: list[int]) -> None:
            ack = AckMessage(site_id=SITE, camera_id=CAM, seqs=ranges(seqs), ts=datetime.now(UTC))
            server.publish(ack_topic(SITE, CAM, prefix), ack.model_dump_json(), qos=1).wait_for_publish(5)

        server.publish(ack_topic(SITE, CAM, prefix), b"not json", qos=1)  # ignored, logged
        confirm([1, 2, 3, 4, 5, 7])
        assert _wait(lambda: outbox.depth(CAM) == 4), outbox.depth(CAM)

        # The broker crashes: what it acknowledged is not trusted; the unconfirmed rest is sent again.
        collector.close()
        broker.kill()
        broker.start()
        # Subscribed again before the publisher's first reconnect attempt (paho waits at least 1 s).
        collector = Collector(broker.port, prefix)
        assert _wait(lambda: sorted(collector.seqs) == [6, 8, 9, 10], 30), collector.seqs  # the unconfirmed
        confirm([6, 8, 9, 10])
        assert _wait(lambda: outbox.depth(CAM) == 0)
        assert pub.confirmed == 10
    finally:
        pub.stop(drain_s=0)
        collector.close()
        server.loop_stop()
        server.disconnect()
        broker.stop()
