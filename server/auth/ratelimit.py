"""Rate limits kept in memory per server process (several instances each count their own share; put a
rate limit on the reverse proxy as well in production).

``LoginLimiter``: login attempts.
- Each attempt is *reserved* before the password is checked, atomically, against its source address's
  budget (failures plus attempts still being checked): parallel requests cannot each get a guess.
  A success gives its reservation back; a failure keeps it for ``window_s``.
- A named user is never locked out: failures on a username only slow further attempts on it down
  (a growing delay, capped), from any source, so a correct password still gets in after the delay.
  Only the source that made the failures is refused (429).
- Memory is bounded: the least recently used keys are evicted, never the whole table.

``UserRateLimiter``: a token bucket per caller for the whole API (429 with Retry-After).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(slots=True)
class Reservation:
    """One login attempt that holds a slot of its source's budget until it is settled."""

    username: str
    address: str
    at: float
    delay_s: float  # how long the attempt waits before its password is checked
    settled: bool = False


class LoginLimiter:
    def __init__(
        self,
        per_address: int = 20,
        per_user_address: int = 5,
        window_s: float = 300.0,
        free_failures: int = 3,
        base_delay_s: float = 0.5,
        max_delay_s: float = 5.0,
        max_keys: int = 100_000,
    ) -> None:
        self._per_address = per_address
        self._per_pair = per_user_address
        self._window = window_s
        self._free = free_failures
        self._base, self._max_delay = base_delay_s, max_delay_s
        self._max_keys = max_keys
        # key -> timestamps of failures (and of pending attempts, in _pending)
        self._failures: OrderedDict[tuple[str, ...], deque[float]] = OrderedDict()
        self._pending: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()
        self.evicted = 0

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        user = username.lower()
        return ("addr", address), ("pair", user, address), ("user", user)

    def _recent(self, key: tuple[str, ...], now: float) -> int:
        q = self._failures.get(key)
        if q is None:
            return 0
        while q and now - q[0] > self._window:
            q.popleft()
        if not q:
            del self._failures[key]
            return 0
        return len(q)

    def _oldest(self, key: tuple[str, ...]) -> float | None:
        q = self._failures.get(key)
        return q[0] if q else None

    def reserve(self, username: str, address: str, now: float | None = None) -> Reservation | float:
        """A reservation for one attempt, or the seconds this source must wait (the attempt is refused)."""
        now = time.monotonic() if now is None else now
        addr, pair, user = self._keys(username, address)
        with self._lock:
            for key, limit in ((addr, self._per_address), (pair, self._per_pair)):
                used = self._recent(key, now) + self._pending.get(key, 0)
                if used >= limit:
                    oldest = self._oldest(key)
                    return self._window - (now - oldest) if oldest is not None else 1.0
            for key in (addr, pair):
                self._pending[key] = self._pending.get(key, 0) + 1
            excess = self._recent(user, now) - self._free
            delay = 0.0 if excess < 0 else min(self._base * 2.0**excess, self._max_delay)
        return Reservation(username, address, now, delay)

    def settle(self, res: Reservation, ok: bool, now: float | None = None) -> None:
        """The attempt's outcome: a success frees its slot, a failure keeps it as a failure."""
        if res.settled:
            return
        res.settled = True
        now = time.monotonic() if now is None else now
        addr, pair, user = self._keys(res.username, res.address)
        with self._lock:
            for key in (addr, pair):
                left = self._pending.get(key, 0) - 1
                if left > 0:
                    self._pending[key] = left
                else:
                    self._pending.pop(key, None)
            if ok:
                self._failures.pop(pair, None)
                return
            for key in (addr, pair, user):
                q = self._failures.get(key)
                if q is None:
                    q = self._failures[key] = deque()
                else:
                    self._failures.move_to_end(key)
                q.append(now)
            while len(self._failures) > self._max_keys:  # evict the least recently failed keys
                self._failures.popitem(last=False)
                self.evicted += 1

    def __len__(self) -> int:
        return len(self._failures)


class UserRateLimiter:
    """A token bucket per caller: ``burst`` requests at once, refilled at ``rate_per_s``."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self._rate, self._burst, self._max_keys = rate_per_s, float(burst), max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self._rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait
