"""Login rate limiting: failed attempts per username and per client address in a sliding window.

Kept in memory per server process (several instances each count their own share; put a rate limit on
the reverse proxy as well in production). A success clears the username's failures.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class LoginLimiter:
    def __init__(
        self, per_user: int = 5, per_address: int = 20, window_s: float = 300.0, max_keys: int = 100_000
    ) -> None:
        self._limits = {"user": per_user, "addr": per_address}
        self._window = window_s
        self._max_keys = max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and now - q[0] > self._window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, username: str, address: str, now: float | None = None) -> float:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key in (("user", username.lower()), ("addr", address)):
                q = self._recent(key, now)
                if len(q) >= self._limits[key[0]]:
                    wait = max(wait, self._window - (now - q[0]))
        return wait

    def failed(self, username: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) >= self._max_keys:
                self._failures.clear()  # bounded memory under a flood of random usernames
            for key in (("user", username.lower()), ("addr", address)):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username.lower()), None)
