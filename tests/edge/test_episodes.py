"""Incidents from per-frame conditions: one incident per event, not one per frame."""

from __future__ import annotations

from edge.analytics.episodes import EpisodeTracker, Observation, Transition


def play(tracker: EpisodeTracker, active: list[bool], fps: float = 10.0) -> list[tuple[float, Transition]]:
    out = []
    for i, on in enumerate(active):
        t = i / fps
        for transition, _ in tracker.step(t, [Observation("z", frozenset({1}))] if on else []):
            out.append((round(t, 1), transition))
    return out


def test_needs_min_seconds_then_starts_once_and_ends_once() -> None:
    events = play(EpisodeTracker(min_seconds=1.0, end_after_s=0.5, cooldown_s=0), [True] * 30 + [False] * 10)
    assert events == [(1.0, Transition.START), (3.4, Transition.END)]


def test_short_condition_raises_nothing() -> None:
    assert play(EpisodeTracker(2.0, 0.5, 0), [True] * 15 + [False] * 20) == []


def test_flicker_is_bridged() -> None:
    flicker = ([True] * 4 + [False] * 2) * 6 + [False] * 10
    events = play(EpisodeTracker(1.0, 0.5, 0), flicker)
    assert [e for _, e in events] == [Transition.START, Transition.END]


def test_cooldown_suppresses_a_repeat() -> None:
    pattern = [True] * 5 + [False] * 10 + [True] * 5 + [False] * 10
    assert len(play(EpisodeTracker(0.0, 0.5, cooldown_s=60), pattern)) == 2  # one start, one end
    assert len(play(EpisodeTracker(0.0, 0.5, cooldown_s=0), pattern)) == 4


def test_update_when_more_tracks_join() -> None:
    tracker = EpisodeTracker(0.0, 1.0, 0)
    assert [e for e, _ in tracker.step(0.0, [Observation("z", frozenset({1}))])] == [Transition.START]
    assert tracker.step(0.1, [Observation("z", frozenset({1}))]) == []
    changes = tracker.step(0.2, [Observation("z", frozenset({2}))])
    assert [e for e, _ in changes] == [Transition.UPDATE]
    assert changes[0][1].track_ids == {1, 2}
