"""Login rate limiting (issue 12, item 5): parallel guesses are reserved before the password is
checked, a named officer is never locked out by someone else's failures, and a full table evicts old
entries instead of forgetting every counter.

How main failed: it checked the counters before verifying and counted failures after, so 30 parallel
guesses all got an answer; five failures from anywhere locked the user out (429 even with the right
password); and a full table was cleared, resetting the attacker's own counters."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.auth.ratelimit import LoginLimiter, Reservation
from server.auth.users import create_user
from tests.server.helpers import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TOKEN = "/api/v1/auth/token"


def _officer(dsn: str) -> str:
    name = f"officer-{uuid.uuid4().hex[:6]}"
    create_user(dsn, name, PASSWORD, "police")
    return name


def test_parallel_guesses_each_need_a_reservation(sec_env: tuple[FastAPI, str]) -> None:
    app, dsn = sec_env
    name = _officer(dsn)
    with TestClient(app, client=("203.0.113.7", 40000)) as attacker:

        def guess(i: int) -> int:
            r = attacker.post(TOKEN, data={"username": name, "password": f"guess-{i}-wrong"})
            return int(r.status_code)

        with ThreadPoolExecutor(30) as pool:
            codes = list(pool.map(guess, range(30)))
    answered = codes.count(401)
    assert set(codes) <= {401, 429}
    assert answered <= 5, f"{answered} parallel guesses were checked (the budget is 5)"
    assert codes.count(429) >= 25


def test_a_named_officer_is_never_locked_out(
    sec_env: tuple[FastAPI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, dsn = sec_env
    # The real delays (0.5 s doubling up to 5 s) scaled down so the test is quick; the logic is the same.
    monkeypatch.setattr(app.state, "login_limiter", LoginLimiter(base_delay_s=0.01, max_delay_s=0.05))
    name = _officer(dsn)
    for address in ("198.51.100.1", "198.51.100.2"):
        with TestClient(app, client=(address, 40000)) as attacker:
            codes = [
                attacker.post(TOKEN, data={"username": name, "password": f"nope-{i}"}).status_code
                for i in range(6)
            ]
            assert codes[:5] == [401] * 5 and codes[5] == 429  # the attacker's source is throttled
            refused = attacker.post(TOKEN, data={"username": name, "password": PASSWORD})
            assert refused.status_code == 429  # ... even with the right password, from there
    with TestClient(app, client=("192.0.2.50", 40000)) as station:
        ok = station.post(TOKEN, data={"username": name, "password": PASSWORD})
        assert ok.status_code == 200, ok.text  # the officer gets in (after a delay), 10 failures on
        wrong = station.post(TOKEN, data={"username": name, "password": "typo-once"})
        assert wrong.status_code == 401


def test_a_full_table_evicts_the_oldest_instead_of_forgetting_everyone() -> None:
    limiter = LoginLimiter(per_address=20, per_user_address=5, max_keys=40)
    now = 1000.0

    def fail(user: str, addr: str) -> None:
        res = limiter.reserve(user, addr, now)
        assert isinstance(res, Reservation)
        limiter.settle(res, ok=False, now=now)

    for i in range(20):  # a flood from many sources fills the table
        fail(f"random-{i}", f"10.0.0.{i}")
    for _ in range(5):
        fail("officer", "203.0.113.9")
    assert not isinstance(limiter.reserve("officer", "203.0.113.9", now), Reservation)
    for i in range(5):  # the table is full: more flood evicts the oldest keys, not the attacker's
        fail(f"more-{i}", f"10.1.0.{i}")
    assert len(limiter) <= 40 and limiter.evicted > 0
    assert not isinstance(limiter.reserve("officer", "203.0.113.9", now), Reservation)
    # Failures end with their window; a success gives its reservation back.
    assert isinstance(limiter.reserve("officer", "203.0.113.9", now + 301), Reservation)


def test_failures_on_a_username_slow_it_down_without_refusing_it() -> None:
    limiter = LoginLimiter(free_failures=3, base_delay_s=0.5, max_delay_s=5.0)
    delays = []
    for i in range(8):  # from eight sources: none is refused, each waits longer (capped)
        res = limiter.reserve("officer", f"10.9.0.{i}", 1000.0)
        assert isinstance(res, Reservation)
        delays.append(res.delay_s)
        limiter.settle(res, ok=False, now=1000.0)
    assert delays == [0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 5.0]
