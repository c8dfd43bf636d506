"""Process metrics in the Prometheus text format (hand-written: a few counters, gauges, histograms)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.auth.audit import Head

_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def render(self, name: str, help_text: str) -> list[str]:
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for bound, count in zip(self.buckets, self.counts, strict=True):
            out.append(f'{name}_bucket{{le="{bound:g}"}} {count}')
        out += [
            f'{name}_bucket{{le="+Inf"}} {self.total}',
            f"{name}_sum {self.sum:.6f}",
            f"{name}_count {self.total}",
        ]
        return out


class Metrics:
    """Counters shared by the ingest threads and the API; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.stored: defaultdict[str, int] = defaultdict(int)
        self.duplicates = 0
        self.dead_letters: defaultdict[str, int] = defaultdict(int)
        self.gap_messages = 0
        self.gap_filled = 0
        self.queue_overflow = 0
        self.db_errors = 0
        self.batches = 0
        self.queue_depth = 0
        self.mqtt_connected = 0
        self.last_lag_s = 0.0
        self._batch_size = _Histogram(_BATCH_BUCKETS)
        self._commit_latency = _Histogram(_LAG_BUCKETS)
        self._lag = _Histogram(_LAG_BUCKETS)
        self.alerts_raised = 0
        self.audit_head_id = 0
        self.audit_head_rows = 0
        self.audit_head_exported = 0.0
        self.alert_escalations = 0
        self.alert_attempts: defaultdict[tuple[str, bool], int] = defaultdict(int)
        self._alert_latency = _Histogram(_LAG_BUCKETS)

    def on_received(self) -> None:
        with self._lock:
            self.received += 1

    def on_overflow(self) -> None:
        with self._lock:
            self.queue_overflow += 1

    def on_db_error(self) -> None:
        with self._lock:
            self.db_errors += 1

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self.mqtt_connected = int(connected)

    def set_queue_depth(self, depth: int) -> None:
        with self._lock:
            self.queue_depth = depth

    def on_batch(
        self,
        *,
        size: int,
        stored: dict[str, int],
        duplicates: int,
        dead: dict[str, int],
        gap_messages: int,
        gap_filled: int,
        commit_latencies_s: list[float],
        lags_s: list[float],
    ) -> None:
        """Record one committed batch."""
        with self._lock:
            self.batches += 1
            self._batch_size.observe(size)
            for kind, n in stored.items():
                self.stored[kind] += n
            self.duplicates += duplicates
            for reason, n in dead.items():
                self.dead_letters[reason] += n
            self.gap_messages += gap_messages
            self.gap_filled += gap_filled
            for value in commit_latencies_s:
                self._commit_latency.observe(value)
            for value in lags_s:
                self._lag.observe(value)
            if lags_s:
                self.last_lag_s = max(lags_s)

    def on_alert(self, escalation: bool = False) -> None:
        with self._lock:
            if escalation:
                self.alert_escalations += 1
            else:
                self.alerts_raised += 1

    def on_alert_attempt(self, channel: str, ok: bool, since_incident_s: float | None) -> None:
        with self._lock:
            self.alert_attempts[channel, ok] += 1
            if ok and since_incident_s is not None:
                self._alert_latency.observe(since_incident_s)

    def set_audit_head(self, head: Head) -> None:
        """The audit chain's head as last exported (``server.auth.audit.Head``)."""
        with self._lock:
            self.audit_head_id = head.id
            self.audit_head_rows = head.rows
            self.audit_head_exported = time.time()

    def render(self) -> str:
        """The Prometheus text exposition (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP citywatch_ingest_received_total MQTT messages received.",
                "# TYPE citywatch_ingest_received_total counter",
                f"citywatch_ingest_received_total {self.received}",
                "# HELP citywatch_ingest_stored_total Messages stored, by kind.",
                "# TYPE citywatch_ingest_stored_total counter",
            ]
            lines += [
                f'citywatch_ingest_stored_total{{kind="{k}"}} {v}' for k, v in sorted(self.stored.items())
            ]
            lines += [
                "# HELP citywatch_ingest_duplicates_total Redelivered or repeated messages (stored once).",
                "# TYPE citywatch_ingest_duplicates_total counter",
                f"citywatch_ingest_duplicates_total {self.duplicates}",
                "# HELP citywatch_ingest_dead_letters_total Rejected messages, by reason.",
                "# TYPE citywatch_ingest_dead_letters_total counter",
            ]
            lines += [
                f'citywatch_ingest_dead_letters_total{{reason="{k}"}} {v}'
                for k, v in sorted(self.dead_letters.items())
            ]
            for name, help_text, value, kind in (
                (
                    "citywatch_ingest_gap_messages_total",
                    "Sequence numbers found missing.",
                    self.gap_messages,
                    "counter",
                ),
                (
                    "citywatch_ingest_gap_filled_total",
                    "Late messages that filled a gap.",
                    self.gap_filled,
                    "counter",
                ),
                (
                    "citywatch_ingest_queue_overflow_total",
                    "Messages dropped unacknowledged (queue full).",
                    self.queue_overflow,
                    "counter",
                ),
                (
                    "citywatch_ingest_db_errors_total",
                    "Failed batch transactions (retried).",
                    self.db_errors,
                    "counter",
                ),
                ("citywatch_ingest_batches_total", "Committed batches.", self.batches, "counter"),
                (
                    "citywatch_ingest_queue_depth",
                    "Messages waiting for the writer.",
                    self.queue_depth,
                    "gauge",
                ),
                (
                    "citywatch_mqtt_connected",
                    "1 while connected to the broker.",
                    self.mqtt_connected,
                    "gauge",
                ),
            ):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
            lines += [
                "# HELP citywatch_ingest_lag_seconds_last Largest message age at commit in the last batch.",
                "# TYPE citywatch_ingest_lag_seconds_last gauge",
                f"citywatch_ingest_lag_seconds_last {self.last_lag_s:.3f}",
            ]
            lines += self._batch_size.render("citywatch_ingest_batch_size", "Messages per committed batch.")
            lines += self._commit_latency.render(
                "citywatch_ingest_commit_latency_seconds", "From arrival at the server to commit."
            )
            lines += self._lag.render("citywatch_ingest_lag_seconds", "From production (ts) to commit.")
            lines += [
                "# HELP citywatch_alerts_raised_total Alerts raised (one per event and rule).",
                "# TYPE citywatch_alerts_raised_total counter",
                f"citywatch_alerts_raised_total {self.alerts_raised}",
                "# HELP citywatch_alert_escalations_total Escalation steps sent.",
                "# TYPE citywatch_alert_escalations_total counter",
                f"citywatch_alert_escalations_total {self.alert_escalations}",
                "# HELP citywatch_alert_delivery_attempts_total Delivery attempts, by channel and outcome.",
                "# TYPE citywatch_alert_delivery_attempts_total counter",
            ]
            lines += [
                f'citywatch_alert_delivery_attempts_total{{channel="{c}",ok="{str(ok).lower()}"}} {n}'
                for (c, ok), n in sorted(self.alert_attempts.items())
            ]
            lines += self._alert_latency.render(
                "citywatch_alert_delivery_seconds", "From the incident's arrival at the server to delivery."
            )
            lines += [
                "# HELP citywatch_audit_head_id Id of the newest audit row at the last head export.",
                "# TYPE citywatch_audit_head_id gauge",
                f"citywatch_audit_head_id {self.audit_head_id}",
                "# HELP citywatch_audit_head_rows Audit rows at the last head export (falls: rows removed).",
                "# TYPE citywatch_audit_head_rows gauge",
                f"citywatch_audit_head_rows {self.audit_head_rows}",
                "# HELP citywatch_audit_head_exported_seconds When the head was last exported (Unix time).",
                "# TYPE citywatch_audit_head_exported_seconds gauge",
                f"citywatch_audit_head_exported_seconds {self.audit_head_exported:.0f}",
            ]
        return "\n".join(lines) + "\n"
