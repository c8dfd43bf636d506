"""Sequence tracking: gaps open on skipped numbers and shrink, split or close as late ones arrive."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.ingest.gaps import Gap, track

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def missing(gaps: list[Gap]) -> set[int]:
    return {s for g in gaps for s in range(g.first, g.last + 1)}


@pytest.mark.parametrize(
    ("max_seq", "gaps", "seqs", "want_max", "want_missing"),
    [
        pytest.param(None, [], [5, 6, 7], 7, set(), id="first-seen-starts-sequence"),
        pytest.param(3, [], [4, 5], 5, set(), id="in-order"),
        pytest.param(3, [], [7], 7, {4, 5, 6}, id="skip-opens-gap"),
        pytest.param(3, [], [6, 4, 5], 6, set(), id="reordered-within-batch-no-gap"),
        pytest.param(7, [Gap(4, 6, NOW, 1)], [5], 7, {4, 6}, id="late-splits-gap"),
        pytest.param(7, [Gap(4, 6, NOW, 1)], [4], 7, {5, 6}, id="late-shrinks-front"),
        pytest.param(7, [Gap(4, 6, NOW, 1)], [6, 5, 4], 7, set(), id="late-closes-gap"),
        pytest.param(7, [], [3], 7, set(), id="repeat-not-missing"),
    ],
)
def test_track(
    max_seq: int | None, gaps: list[Gap], seqs: list[int], want_max: int, want_missing: set[int]
) -> None:
    update = track(max_seq, gaps, seqs, NOW)
    assert update.max_seq == want_max
    assert missing(update.gaps) == want_missing


def test_split_keeps_row_id_on_first_piece() -> None:
    update = track(9, [Gap(2, 8, NOW, 42)], [5], NOW)
    assert [(g.first, g.last, g.id) for g in update.gaps] == [(2, 4, 42), (6, 8, None)]
    assert update.filled == 1


@given(st.permutations(list(range(1, 40))), st.integers(min_value=1, max_value=8))
def test_any_arrival_order_ends_with_no_gaps(order: list[int], chunk: int) -> None:
    """Whatever the arrival order and batching, once every number arrived nothing is missing, and
    what is missing in between is exactly the numbers not yet seen below the maximum."""
    max_seq: int | None = None
    gaps: list[Gap] = []
    seen: set[int] = set()
    start = min(order[:chunk])  # the first batch starts the sequence; lower numbers are repeats
    for i in range(0, len(order), chunk):
        part = order[i : i + chunk]
        update = track(max_seq, gaps, part, NOW)
        max_seq, gaps = update.max_seq, update.gaps
        seen |= set(part)
        assert max_seq == max(seen)
        assert missing(gaps) == {s for s in range(start, max(seen) + 1) if s not in seen}
    assert max_seq == 39
    assert missing(gaps) == set()
