"""The dispatcher: concurrent channels, retries with backoff, per-attempt timeouts, attempt records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr

from server.alerting.alert import Alert
from server.alerting.channels import DeliveryResult, SmtpChannel, WebhookChannel
from server.alerting.dispatcher import DeliveryAttempt, Dispatcher, RetryPolicy
from server.alerting.errors import DeliveryError
from tests.server.alerting.helpers import make_alert
from tests.server.alerting.peers import MailHandler, WebhookReceiver, smtp_server, webhook_server

SECRET = "whsec-dispatch-77"
FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, attempt_timeout_s=5, jitter=0)


@dataclass
class Records:
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    async def __call__(self, attempt: DeliveryAttempt) -> None:
        self.attempts.append(attempt)

    def of(self, channel: str) -> list[tuple[int, bool, str | None, bool]]:
        return [(a.attempt, a.ok, a.status, a.final) for a in self.attempts if a.channel == channel]


@dataclass
class ScriptedChannel:
    """A boundary fake: each send takes the next step ("ok", "fail", "permanent" or "boom")."""

    name: str
    steps: list[str]
    calls: int = 0

    async def send(self, alert: Alert) -> DeliveryResult:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if step == "fail":
            raise DeliveryError(self.name, "temporarily down", status="503")
        if step == "permanent":
            raise DeliveryError(self.name, "refused", status="403", retryable=False)
        if step == "boom":
            raise RuntimeError("bug in channel")
        return DeliveryResult("ok")


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (9, 5.0)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=5.0, jitter=0)
    assert policy.delay(attempt) == delay


def test_backoff_jitter_stays_in_bounds() -> None:
    policy = RetryPolicy(base_delay_s=1.0, jitter=0.2)
    delays = {policy.delay(1) for _ in range(200)}
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert len(delays) > 1


@pytest.mark.parametrize(
    ("steps", "delivered", "expected"),
    [
        pytest.param(["ok"], True, [(1, True, "ok", True)], id="first-try"),
        pytest.param(
            ["fail", "ok"], True, [(1, False, "503", False), (2, True, "ok", True)], id="retry-then-ok"
        ),
        pytest.param(
            ["fail"],
            False,
            [(1, False, "503", False), (2, False, "503", False), (3, False, "503", True)],
            id="attempts-used-up",
        ),
        pytest.param(["permanent"], False, [(1, False, "403", True)], id="permanent-no-retry"),
        pytest.param(
            ["boom", "ok"], True, [(1, False, None, False), (2, True, "ok", True)], id="channel-bug"
        ),
    ],
)
def test_retries_are_recorded(
    steps: list[str], delivered: bool, expected: list[tuple[int, bool, str | None, bool]]
) -> None:
    records = Records()
    channel = ScriptedChannel("c", steps)
    outcome = asyncio.run(Dispatcher([channel], records, FAST).dispatch(make_alert(), ["c"]))
    assert outcome == {"c": delivered}
    assert records.of("c") == expected
    assert channel.calls == len(expected)
    assert all(a.error is None for a in records.attempts if a.ok)
    assert all(a.error for a in records.attempts if not a.ok)


def test_unknown_channel_and_failing_recorder_do_not_stop_delivery() -> None:
    seen: list[DeliveryAttempt] = []

    async def flaky_record(attempt: DeliveryAttempt) -> None:
        seen.append(attempt)
        raise OSError("database down")

    good = ScriptedChannel("good", ["ok"])
    outcome = asyncio.run(
        Dispatcher([good], flaky_record, FAST).dispatch(make_alert(), ["nope", "good", "good"])
    )
    assert outcome == {"nope": False, "good": True}
    assert good.calls == 1  # named twice, sent once
    assert sorted((a.channel, a.ok, a.error) for a in seen) == [
        ("good", True, None),
        ("nope", False, "unknown channel"),
    ]


@pytest.mark.integration
def test_webhook_500_then_200_is_retried_and_signed_each_time() -> None:
    receiver = WebhookReceiver(SECRET, script=[500, 200])
    records = Records()
    alert = make_alert()

    async def go(url: str) -> dict[str, bool]:
        async with WebhookChannel("hook", url, SecretStr(SECRET)) as hook:
            return await Dispatcher([hook], records, FAST).dispatch(alert, ["hook"])

    with webhook_server(receiver) as url:
        assert asyncio.run(go(url)) == {"hook": True}
    assert records.of("hook") == [(1, False, "500", False), (2, True, "200", True)]
    assert [r.signature_ok for r in receiver.received] == [True, True]
    # Both attempts carry the same alert id, so a receiver that did get the first can drop the second.
    assert {r.headers["X-Citywatch-Alert-Id"] for r in receiver.received} == {str(alert.alert_id)}


@pytest.mark.integration
def test_smtp_refusal_is_recorded_as_failure() -> None:
    refusing = MailHandler(reply="451 4.3.0 mailbox busy")
    records = Records()
    with smtp_server(refusing) as port:
        mail = SmtpChannel("mail", "127.0.0.1", port, "a@example.org", ["b@example.org"], security="none")
        outcome = asyncio.run(Dispatcher([mail], records, FAST).dispatch(make_alert(), ["mail"]))
    assert outcome == {"mail": False}
    assert records.of("mail") == [(1, False, "451", False), (2, False, "451", False), (3, False, "451", True)]
    assert refusing.attempts == 3


@pytest.mark.integration
def test_a_hanging_channel_does_not_hold_up_the_others() -> None:
    stuck = WebhookReceiver(SECRET, script=["hang"])
    healthy = WebhookReceiver(SECRET, script=[200])
    mail_handler = MailHandler()
    policy = RetryPolicy(attempts=1, attempt_timeout_s=3, jitter=0)
    events: list[tuple[str, bool, bool, int]] = []  # channel, ok, stuck request still unanswered, records

    async def record(attempt: DeliveryAttempt) -> None:
        events.append((attempt.channel, attempt.ok, stuck.answered == 0, len(events)))

    async def go(stuck_url: str, healthy_url: str, smtp_port: int) -> dict[str, bool]:
        async with (
            WebhookChannel("stuck", stuck_url, SecretStr(SECRET), timeout_s=60) as slow,
            WebhookChannel("healthy", healthy_url, SecretStr(SECRET)) as fast,
        ):
            mail = SmtpChannel(
                "mail", "127.0.0.1", smtp_port, "a@example.org", ["b@example.org"], security="none"
            )
            dispatcher = Dispatcher([slow, fast, mail], record, policy)
            return await dispatcher.dispatch(make_alert(), ["stuck", "healthy", "mail"])

    with (
        webhook_server(stuck) as stuck_url,
        webhook_server(healthy) as healthy_url,
        smtp_server(mail_handler) as port,
    ):
        outcome = asyncio.run(go(stuck_url, healthy_url, port))
        assert stuck.hanging.is_set()  # the request did reach the receiver, which held it

    assert outcome == {"stuck": False, "healthy": True, "mail": True}
    order = [channel for channel, *_ in events]
    # The stuck channel is recorded last, after the per-attempt timeout; the others finished while its
    # request was still being held, unanswered.
    assert order[-1] == "stuck"
    assert sorted(order[:2]) == ["healthy", "mail"]
    assert all(ok and unanswered for channel, ok, unanswered, _ in events if channel != "stuck")
    assert events[-1][1] is False
    assert len(healthy.received) == 1
    assert len(mail_handler.messages) == 1
