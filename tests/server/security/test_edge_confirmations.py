"""An edge believes a delivery confirmation only for its own site and camera, and only up to the
highest seq it has actually sent (issue 12, item 10): whoever can publish on the confirmation topic
cannot make it drop data the server never received. Real private Mosquitto; the publisher's steps are
driven by the test so that some messages are still unsent when the forged confirmation arrives.

How main failed: it checked the camera id only, and deleted every confirmed seq in its outbox, sent
or not (the forged range below emptied it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract import CountsMessage, StatusMessage, StreamState
from contract.acks import AckMessage
from contract.topics import ack_topic, topic_for
from edge.outbox import Outbox
from edge.publisher import CameraPublisher
from edge.settings import MqttSettings
from tests.mosquitto import Broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
SITE, CAM = "s1", "cam-1"


def _counts(seq: int) -> CountsMessage:
    start = datetime(2026, 11, 27, tzinfo=UTC) + timedelta(minutes=seq)
    return CountsMessage(
        msg_id=uuid.uuid4(), site_id=SITE, edge_id="e1", camera_id=CAM, seq=seq, ts=datetime.now(UTC),
        bin_start=start, bin_end=start + timedelta(minutes=1), lines=[], frames=1, fps=1.0,
    )  # fmt: skip


def _wait(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _drained(pub: CameraPublisher) -> int:
    pub._drain_acks()
    return pub.published


def test_forged_confirmations_free_nothing_unsent(tmp_path: Path, unique: str) -> None:
    prefix = f"fg{unique}"
    broker = Broker(tmp_path / "broker")
    broker.start()
    outbox = Outbox(tmp_path / "o.sqlite3")
    offline = StatusMessage(
        msg_id=uuid.uuid4(), site_id=SITE, edge_id="e1", camera_id=CAM, seq=0, ts=datetime.now(UTC),
        state=StreamState.OFFLINE,
    )  # fmt: skip
    pub = CameraPublisher(
        outbox, MqttSettings(port=broker.port), SITE, "e1", CAM, prefix, offline, inflight=5, confirm=True
    )
    forger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"forger-{unique}")
    forger.connect("127.0.0.1", broker.port)
    forger.loop_start()
    client = pub._client
    try:
        for _ in range(10):
            outbox.put(CAM, topic_for(SITE, CAM, "counts", prefix), _counts)
        client.connect("127.0.0.1", broker.port)  # the publisher's own client, its steps run here
        client.loop_start()
        assert _wait(lambda: pub.connected)
        time.sleep(0.5)  # its subscription to the confirmation topic is in place
        pub._send_more()  # one step: 5 in flight (seq 1-5); 6-10 stay unsent
        assert _wait(lambda: _drained(pub) == 5)

        def forge(site: str, first: int, last: int) -> None:
            ack = AckMessage(site_id=site, camera_id=CAM, seqs=[(first, last)], ts=datetime.now(UTC))
            forger.publish(ack_topic(SITE, CAM, prefix), ack.model_dump_json(), qos=1).wait_for_publish(5)

        forge("another-site", 1, 10)  # the right topic, another site's confirmation: ignored
        forge(SITE, 1, 10)  # this site, but beyond what was sent: cut at seq 5

        def applied() -> bool:
            pub._apply_confirmations()
            return outbox.depth(CAM) < 10

        assert _wait(applied)
        assert outbox.depth(CAM) == 5, "a confirmation freed messages that were never sent"
        assert pub.refused_confirmations == 2
        assert [r.seq for r in outbox.peek(CAM, 0, 100)] == [6, 7, 8, 9, 10]
    finally:
        client.loop_stop()
        client.disconnect()
        forger.loop_stop()
        forger.disconnect()
        broker.stop()
