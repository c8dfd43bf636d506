"""From analytics results to contract messages: envelope fields, sequence numbers, topics.

A :class:`Sink` stores a message and gives it its per-camera sequence number atomically: the durable
outbox in production (:mod:`edge.outbox`), a list in replay and tests.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from contract.messages import Envelope, StatusMessage
from contract.topics import topic_for

Build = Callable[[int], Envelope]


class Sink(Protocol):
    def put(self, camera_id: str, topic: str, build: Build) -> None:
        """Store one data message; ``build(seq)`` makes it with the camera's next sequence number."""
        ...

    def last_seq(self, camera_id: str) -> int:
        """The last sequence number allocated for the camera (0 if none)."""
        ...


class Emitter:
    """Builds the messages of one camera and hands them to a sink."""

    def __init__(self, site_id: str, edge_id: str, camera_id: str, prefix: str, sink: Sink) -> None:
        self.site_id = site_id
        self.edge_id = edge_id
        self.camera_id = camera_id
        self.prefix = prefix
        self.sink = sink

    def emit(self, model: type[Envelope], kind: str, ts: datetime, **fields: Any) -> None:
        def build(seq: int) -> Envelope:
            return model(
                msg_id=uuid.uuid4(),
                site_id=self.site_id,
                edge_id=self.edge_id,
                camera_id=self.camera_id,
                seq=seq,
                ts=ts,
                **fields,
            )

        self.sink.put(self.camera_id, topic_for(self.site_id, self.camera_id, kind, self.prefix), build)

    def status(self, ts: datetime, **fields: Any) -> StatusMessage:
        """A status message (not sequenced: it repeats the last data sequence number)."""
        return StatusMessage(
            msg_id=uuid.uuid4(),
            site_id=self.site_id,
            edge_id=self.edge_id,
            camera_id=self.camera_id,
            seq=self.sink.last_seq(self.camera_id),
            ts=ts,
            **fields,
        )


class MemorySink:
    """Keeps messages in a list (replay, tests); sequence numbers start at 1 per camera."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Envelope]] = []
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()

    def put(self, camera_id: str, topic: str, build: Build) -> None:
        with self._lock:
            seq = self._seq.get(camera_id, 0) + 1
            message = build(seq)
            self._seq[camera_id] = seq
            self.messages.append((topic, message))

    def last_seq(self, camera_id: str) -> int:
        with self._lock:
            return self._seq.get(camera_id, 0)
