"""Ingest wiring: subscriber thread -> batching -> validation -> writer thread -> acknowledgement."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from citywatch.site import SiteConfig
from contract.acks import AckMessage, ranges
from contract.topics import ack_topic
from server.db.migrate import storage_backend
from server.ingest.subscriber import Subscriber
from server.ingest.validate import Accepted, Incoming, Rejected, Validator
from server.ingest.writer import BatchWriter, WriteResult
from server.metrics import Metrics
from server.settings import Settings

log = logging.getLogger(__name__)

Item = tuple[int, Incoming]
#: Shortest interval between refreshes of late bins into the continuous aggregates under load; a slow
#: refresh (a backlog of old bins re-materializes whole buckets) stretches it to LATE_REFRESH_SHARE.
LATE_REFRESH_EVERY_S = 1.0
#: A refresh may take at most this share of the writer's time while batches keep coming.
LATE_REFRESH_SHARE = 0.1


class IngestService:
    """Runs the subscriber and the batch writer; ``stop`` leaves unwritten messages with the broker."""

    def __init__(
        self,
        settings: Settings,
        site: SiteConfig,
        metrics: Metrics,
        on_commit: Callable[[WriteResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.validator = Validator(site, settings.max_future_s, settings.max_age_days)
        self.subscriber = Subscriber(settings, site.mqtt_prefix, site.site.id, metrics)
        self._timezone = site.site.timezone
        self._site_id, self._prefix = site.site.id, site.mqtt_prefix
        self._on_commit = on_commit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="citywatch-writer", daemon=True)
        # Validation of the next batch overlaps the database round trips of the current one.
        self._prepared: queue.Queue[tuple[list[Item], list[Accepted | Rejected]]] = queue.Queue(maxsize=2)
        self._preparer = threading.Thread(target=self._prepare_loop, name="citywatch-validate", daemon=True)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._writer: BatchWriter | None = None
        self._late_since: datetime | None = None  # earliest bin stored since the last late refresh
        self._late_at = 0.0  # time.monotonic() of that refresh
        self._late_every = LATE_REFRESH_EVERY_S

    def start(self) -> None:
        self._preparer.start()
        self._thread.start()
        self.subscriber.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._preparer.join(timeout)
        self._thread.join(timeout)
        self.subscriber.stop()
        if self._conn is not None:
            self._conn.close()

    # --- writer thread ------------------------------------------------------------------------
    def _collect(self) -> list[Item]:
        """A batch closes when full, after ``batch_ms``, or when the stream pauses for ``batch_idle_ms``.

        The pause rule matters: the broker sends at most its in-flight window of unacknowledged
        messages (Mosquitto ``max_inflight_messages``, 20 by default), and we acknowledge only after
        commit, so waiting for a full batch would stall on every window.
        """
        q = self.subscriber.queue
        try:
            first = q.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        idle = self.settings.batch_idle_ms / 1000.0
        deadline = time.monotonic() + self.settings.batch_ms / 1000.0
        while len(batch) < self.settings.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(q.get(timeout=min(remaining, idle)))
            except queue.Empty:
                break
        self.metrics.set_queue_depth(q.qsize())
        return batch

    def _connection(self) -> tuple[psycopg.Connection[tuple[Any, ...]], BatchWriter]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            dsn = self.settings.database_url.get_secret_value()
            self._conn = psycopg.connect(
                dsn, autocommit=True, connect_timeout=5, application_name="citywatch-ingest"
            )
            backend = storage_backend(self._conn)
            # Late bins are refreshed into the continuous aggregates after the acknowledgement, coalesced
            # (see _refresh_late), not inside write(): a backlog drain would refresh after every batch.
            self._writer = BatchWriter(
                backend, self._timezone, self.settings.snapshot_dir, refresh_late_bins=False
            )
            log.info("ingest writer connected to the database (%s)", backend)
        assert self._writer is not None
        return self._conn, self._writer

    def _write(self, checked: list[Accepted | Rejected]) -> WriteResult | None:
        """Write until committed (retrying with back-off), or None when stopping."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                conn, writer = self._connection()
                try:
                    return writer.write(conn, checked)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    # Not the connection: some message the database will not take. Isolate it.
                    log.warning(
                        "batch of %d failed (%s); writing one by one", len(checked), type(exc).__name__
                    )
                    return self._write_singly(conn, writer, checked)
            except psycopg.Error as exc:
                self.metrics.on_db_error()
                log.warning("database write failed (%s); retrying in %.1f s", type(exc).__name__, delay)
                if self._conn is not None:
                    self._conn.close()
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
        return None

    def _write_singly(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        writer: BatchWriter,
        checked: list[Accepted | Rejected],
    ) -> WriteResult:
        total = WriteResult()
        for item in checked:
            try:
                part = writer.write(conn, [item])
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                mid = str(item.message.msg_id) if isinstance(item, Accepted) else item.msg_id
                cam = item.message.camera_id if isinstance(item, Accepted) else item.camera_id
                log.warning("message %s (camera %s) not storable: %s", mid, cam, type(exc).__name__)
                part = writer.write(conn, [Rejected(item.incoming, "storage", str(exc)[:1000], cam, mid)])
            total.stored.update(part.stored)
            total.duplicates += part.duplicates
            total.dead.update(part.dead)
            total.gap_messages += part.gap_messages
            total.gap_filled += part.gap_filled
            total.cameras |= part.cameras
        return total

    def _confirm(self, checked: list[Accepted | Rejected]) -> None:
        """Tell each edge which of its sequence numbers are now committed (stored or duplicates).

        QoS 1, not retained; a confirmation that is lost only makes the edge send those messages again
        after its next reconnect, and they are confirmed then (see :mod:`contract.acks`)."""
        by_camera: dict[str, set[int]] = {}
        for c in checked:
            if isinstance(c, Accepted):
                by_camera.setdefault(c.message.camera_id, set()).add(c.message.seq)
        now = datetime.now(UTC)
        for camera, seqs in by_camera.items():
            ack = AckMessage(site_id=self._site_id, camera_id=camera, seqs=ranges(seqs), ts=now)
            topic = ack_topic(self._site_id, camera, self._prefix)
            self.subscriber.client.publish(topic, ack.model_dump_json().encode(), qos=1)

    def _prepare_loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._collect()
                if not batch:
                    continue
                checked = [self.validator.check(item) for _, item in batch]
                for c in checked:
                    if isinstance(c, Rejected):
                        log.warning(
                            "dead letter: %s on %s (camera %s, msg %s): %s",
                            c.reason, c.incoming.topic[:200], c.camera_id, c.msg_id, c.detail[:300],
                        )  # fmt: skip
                while not self._stop.is_set():
                    try:
                        self._prepared.put((batch, checked), timeout=0.2)
                        break
                    except queue.Full:
                        continue
            except Exception:  # the thread must never die
                log.exception("ingest validation step failed; continuing")
                self._stop.wait(1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # the writer thread must never die
                log.exception("ingest writer step failed; continuing")
                self._stop.wait(1.0)

    def _step(self) -> None:
        try:
            batch, checked = self._prepared.get(timeout=0.2)
        except queue.Empty:
            self._refresh_late(force=True)  # the stream paused: nothing waits behind the refresh
            return
        result = self._write(checked)
        if result is None:
            return  # stopping: unacknowledged, the broker keeps them
        committed = time.time()
        unacked = 0
        for generation, item in batch:
            if not self.subscriber.ack(generation, item.mid, item.qos):
                unacked += 1
        if unacked:
            log.info(
                "%d stored message(s) came on an earlier connection; the broker will resend them", unacked
            )
        if self.settings.confirm:
            self._confirm(checked)
        lags = [committed - c.message.ts.timestamp() for c in checked if isinstance(c, Accepted)]
        self.metrics.on_batch(
            size=len(batch),
            stored=dict(result.stored),
            duplicates=result.duplicates,
            dead=dict(result.dead),
            gap_messages=result.gap_messages,
            gap_filled=result.gap_filled,
            commit_latencies_s=[committed - item.received for _, item in batch],
            lags_s=lags,
        )
        if self._on_commit is not None:
            self._on_commit(result)
        if result.earliest_bin is not None:
            self._late_since = min(self._late_since or result.earliest_bin, result.earliest_bin)
        self._refresh_late(force=False)

    def _refresh_late(self, *, force: bool) -> None:
        """TimescaleDB: bring bins stored below an aggregate's watermark into it, at most once a second
        while batches keep coming, and less often when refreshes are slow (they then take at most
        LATE_REFRESH_SHARE of the time: a drain of old bins is not stalled by re-materializing); at once
        when the stream pauses. A failure leaves it pending."""
        if self._late_since is None or self._writer is None or self._conn is None:
            return
        if not force and time.monotonic() - self._late_at < self._late_every:
            return
        t0 = time.monotonic()
        try:
            self._writer.refresh_late(self._conn, self._late_since)
        except psycopg.Error as exc:
            log.warning("refreshing late bins into the aggregates failed (%s); will retry", exc)
            return
        now = time.monotonic()
        self._late_every = max(LATE_REFRESH_EVERY_S, (now - t0) / LATE_REFRESH_SHARE)
        self._late_since, self._late_at = None, now
