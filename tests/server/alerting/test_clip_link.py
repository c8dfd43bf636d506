"""Alerts link the incident's video clip: in the JSON payload (webhook, MQTT) and in the email text."""

from __future__ import annotations

from server.alerting.alert import Alert
from server.alerting.channels import SmtpChannel
from tests.server.alerting.helpers import make_alert

URL = "https://citywatch.example/api/v1/incidents/x/clip"


def _with_clip(alert: Alert) -> Alert:
    return alert.model_copy(update={"clip_url": URL})


def test_payload_and_mail_link_the_clip() -> None:
    alert = _with_clip(make_alert())
    assert alert.payload()["clip_url"] == URL
    mail = SmtpChannel("m", "127.0.0.1", 25, "a@example.org", ["b@example.org"], security="none")
    body = mail.message(alert).get_body(preferencelist=("plain",))
    assert body is not None and f"Video:     {URL}" in body.get_content()


def test_no_clip_no_link() -> None:
    alert = make_alert()
    assert alert.payload()["clip_url"] is None
    mail = SmtpChannel("m", "127.0.0.1", 25, "a@example.org", ["b@example.org"], security="none")
    body = mail.message(alert).get_body(preferencelist=("plain",))
    assert body is not None and "Video:" not in body.get_content()
