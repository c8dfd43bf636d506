"""What callers without incident rights (planners) may learn: aggregates only. Pure, no I/O.

Two rules, applied to every answer that counts incidents or people's movements:

* **Whole buckets.** A range snaps outwards to whole buckets (an hour at least), so bisecting the range
  with ever finer sub-ranges learns nothing finer than the bucket.
* **Small cells suppressed** (k-anonymity). A cell counting fewer than ``k`` keeps its place with
  ``count`` null and ``suppressed`` true: the reader sees that something was there, not how much.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server.history.bins import Granularity, floor_bucket, next_bucket


def snap(start: datetime, end: datetime, bucket: Granularity, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole buckets: start floored, end rounded up to a bucket edge."""
    lo = floor_bucket(start, bucket, tz)
    last = floor_bucket(end - timedelta(microseconds=1), bucket, tz)
    return lo, next_bucket(last, bucket, tz)


def suppress(
    rows: Iterable[dict[str, Any]], k: int, count: str = "count", hide: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Rows with ``suppressed`` set; where ``0 < row[count] < k`` the count (and the ``hide`` fields,
    which are derived from the same few events) become None."""
    hidden = (count, *hide)
    out = []
    for r in rows:
        n = r[count]
        small = n is not None and 0 < int(n) < k
        row = {**r, "suppressed": small}
        if small:
            for name in hidden:
                row[name] = None
        out.append(row)
    return out
