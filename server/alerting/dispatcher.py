"""Delivers one alert to several channels at once, each with its own retries and per-attempt timeout.

A slow or failing channel never holds up the others: each channel is its own task, and every attempt
is bounded by ``attempt_timeout_s``. Every attempt is reported to ``record`` (the server stores it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from server.alerting.alert import Alert
from server.alerting.channels import Channel
from server.alerting.errors import DeliveryError

log = logging.getLogger(__name__)


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=4, ge=1, le=20, description="Attempts per channel, the first included.")
    base_delay_s: float = Field(default=2.0, ge=0, description="Wait before the 2nd attempt; doubles after.")
    max_delay_s: float = Field(default=120.0, ge=0, description="Longest wait between attempts.")
    attempt_timeout_s: float = Field(default=20.0, gt=0, description="One attempt is abandoned after this.")
    jitter: float = Field(
        default=0.2, ge=0, le=1, description="Random +/- fraction on each wait, so retries do not align."
    )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt to deliver one alert over one channel."""

    alert_id: UUID
    channel: str
    attempt: int
    ok: bool
    status: str | None
    error: str | None
    duration_s: float
    at: datetime
    final: bool  # no further attempt follows (delivered, permanent failure or attempts used up)
    escalation_level: int = 0


Recorder = Callable[[DeliveryAttempt], Awaitable[None]]


class Dispatcher:
    """Sends alerts to named channels; see the module docs."""

    def __init__(
        self,
        channels: Mapping[str, Channel] | Iterable[Channel],
        record: Recorder,
        policy: RetryPolicy | None = None,
    ) -> None:
        items = channels.values() if isinstance(channels, Mapping) else channels
        self._channels = {c.name: c for c in items}
        self._record = record
        self._policy = policy or RetryPolicy()

    @property
    def channel_names(self) -> set[str]:
        return set(self._channels)

    async def dispatch(self, alert: Alert, channel_names: Iterable[str]) -> dict[str, bool]:
        """Deliver ``alert`` on every named channel concurrently; whether each finally succeeded."""
        names = list(dict.fromkeys(channel_names))  # a channel named twice still gets one alert
        results = await asyncio.gather(*(self._deliver(alert, name) for name in names))
        return dict(zip(names, results, strict=True))

    async def _deliver(self, alert: Alert, name: str) -> bool:
        channel = self._channels.get(name)
        if channel is None:
            log.error("alert %s: no channel named %r", alert.alert_id, name)
            await self._report(alert, name, 1, None, "unknown channel", 0.0, final=True)
            return False
        policy = self._policy
        for attempt in range(1, policy.attempts + 1):
            start = time.monotonic()
            status: str | None = None
            retryable = True
            try:
                async with asyncio.timeout(policy.attempt_timeout_s):
                    result = await channel.send(alert)
            except TimeoutError:
                error = f"timed out after {policy.attempt_timeout_s:g} s"
            except DeliveryError as exc:
                error, status, retryable = str(exc), exc.status, exc.retryable
            except Exception as exc:
                # A channel bug must not take the other channels or the server down with it.
                log.exception("alert %s: channel %s raised", alert.alert_id, name)
                error = f"{type(exc).__name__}: {exc}"
            else:
                duration = time.monotonic() - start
                await self._report(alert, name, attempt, result.status, None, duration, final=True)
                log.info("alert %s delivered on %s (attempt %d)", alert.alert_id, name, attempt)
                return True
            final = not retryable or attempt == policy.attempts
            await self._report(alert, name, attempt, status, error, time.monotonic() - start, final=final)
            log.warning(
                "alert %s on %s: attempt %d/%d failed: %s",
                alert.alert_id,
                name,
                attempt,
                policy.attempts,
                error,
            )
            if final:
                return False
            await asyncio.sleep(policy.delay(attempt))
        return False  # pragma: no cover - the loop always returns

    async def _report(
        self,
        alert: Alert,
        name: str,
        attempt: int,
        status: str | None,
        error: str | None,
        duration: float,
        *,
        final: bool,
    ) -> None:
        record = DeliveryAttempt(
            alert_id=alert.alert_id,
            channel=name,
            attempt=attempt,
            ok=error is None,
            status=status,
            error=error,
            duration_s=duration,
            at=datetime.now(UTC),
            final=final,
            escalation_level=alert.escalation_level,
        )
        try:
            await self._record(record)
        except Exception:
            # Losing a delivery record is bad; losing the delivery because of it is worse.
            log.exception("alert %s: recording the %s attempt %d failed", alert.alert_id, name, attempt)
