"""Per-camera sequence tracking: gaps open when numbers are skipped and shrink as late ones arrive."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing sequence numbers ``first..last`` (inclusive); ``id`` is the table row, None if new."""

    first: int
    last: int
    opened_at: datetime
    id: int | None = None

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class SeqUpdate:
    max_seq: int | None
    gaps: list[Gap]
    missing_opened: int  # numbers newly found missing
    filled: int  # late arrivals that filled (part of) a gap
    repeats: int  # numbers at or below the maximum that were not missing (an edge reset or a replay)


def track(max_seq: int | None, gaps: Iterable[Gap], seqs: Iterable[int], now: datetime) -> SeqUpdate:
    """Fold newly stored sequence numbers into a camera's state.

    The first number ever seen starts the sequence (earlier ones predate the server). Numbers are
    taken in order, so a gap opened and filled within one batch is never reported.
    """
    current = max_seq
    open_gaps = list(gaps)
    opened = filled = repeats = 0
    for s in sorted(seqs):
        if current is None or s == current + 1:
            current = s
        elif s > current + 1:
            open_gaps.append(Gap(current + 1, s - 1, now))
            opened += s - 1 - current
            current = s
        else:
            for i, g in enumerate(open_gaps):
                if g.first <= s <= g.last:
                    pieces: list[Gap] = []
                    if g.first <= s - 1:
                        pieces.append(replace(g, last=s - 1))
                    if s + 1 <= g.last:
                        # The first piece keeps the row id; a split adds a row with the same age.
                        pieces.append(replace(g, first=s + 1, id=None if pieces else g.id))
                    open_gaps[i : i + 1] = pieces
                    filled += 1
                    break
            else:
                repeats += 1
    return SeqUpdate(current, open_gaps, opened, filled, repeats)
