"""The durable outbox: gap-free sequence numbers across restarts, order, acks, the size cap policy."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from contract import HeartbeatMessage, parse_message
from contract.messages import Envelope
from edge.emit import Emitter
from edge.outbox import Outbox
from tests.edge.scripted import T0


def beat(emitter: Emitter) -> None:
    emitter.emit(
        HeartbeatMessage,
        "heartbeat",
        T0,
        fps=1,
        source_fps=1,
        inference_ms=1,
        dropped_frames=0,
        outbox_depth=0,
        uptime_s=1,
        reconnects=0,
    )


def counts(emitter: Emitter, n: int = 0) -> None:
    from datetime import timedelta

    from contract import CountsMessage

    emitter.emit(
        CountsMessage,
        "counts",
        T0,
        bin_start=T0 + timedelta(minutes=n),
        bin_end=T0 + timedelta(minutes=n + 1),
        frames=1,
        fps=1.0,
    )


def test_sequence_numbers_survive_a_restart_and_order_is_kept(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    em = Emitter("s", "e", "cam", "citywatch", box)
    for i in range(3):
        counts(em, i)
    box.close()
    box = Outbox(tmp_path / "o.sqlite3")
    em = Emitter("s", "e", "cam", "citywatch", box)
    counts(em, 3)
    rows = box.peek("cam", 0, 10)
    seqs = [parse_message(r.payload).seq for r in rows]
    assert seqs == [1, 2, 3, 4]
    assert [r.topic for r in rows] == ["citywatch/v1/s/cam/counts"] * 4
    assert box.last_seq("cam") == 4
    box.delete([rows[0].id, rows[1].id])
    assert [parse_message(r.payload).seq for r in box.peek("cam", 0, 10)] == [3, 4]
    assert box.depth() == 2


def test_cameras_have_their_own_sequences(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    a, b = Emitter("s", "e", "a", "citywatch", box), Emitter("s", "e", "b", "citywatch", box)
    counts(a)
    counts(b)
    counts(a, 1)
    assert [parse_message(r.payload).seq for r in box.peek("a", 0, 10)] == [1, 2]
    assert [parse_message(r.payload).seq for r in box.peek("b", 0, 10)] == [1]


def test_cap_drops_heartbeats_first_then_the_oldest_data(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_messages=4)
    em = Emitter("s", "e", "cam", "citywatch", box)
    beat(em)
    counts(em, 0)
    beat(em)
    counts(em, 1)
    counts(em, 2)  # 5 > 4: the oldest heartbeat goes
    kinds = [r.kind for r in box.peek("cam", 0, 10)]
    assert kinds == ["counts", "heartbeat", "counts", "counts"]
    counts(em, 3)  # the other heartbeat goes
    assert [r.kind for r in box.peek("cam", 0, 10)] == ["counts"] * 4
    assert box.dropped() == 0
    counts(em, 4)  # no heartbeat left: the oldest data message is dropped and counted
    seqs = [parse_message(r.payload).seq for r in box.peek("cam", 0, 10)]
    assert seqs == [4, 5, 6, 7]
    assert box.dropped() == 1


def test_a_failing_build_stores_nothing_and_wastes_no_sequence_number(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")

    def broken(seq: int) -> Envelope:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        box.put("cam", "citywatch/v1/s/cam/counts", broken)
    em = Emitter("s", "e", "cam", "citywatch", box)
    counts(em)
    assert [parse_message(r.payload).seq for r in box.peek("cam", 0, 10)] == [1]
    assert uuid.UUID(str(parse_message(box.peek("cam", 0, 1)[0].payload).msg_id))
