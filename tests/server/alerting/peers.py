"""Real peers for the channel tests: an HTTP webhook receiver and SMTP servers, on free local ports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from server.alerting.errors import SignatureError
from server.alerting.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.mosquitto import free_port


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    signature_ok: bool
    signature_error: str = ""


@dataclass
class WebhookReceiver:
    """Answers each POST with the next scripted reply: an HTTP status, or "hang" (until released)."""

    secret: str
    script: list[int | str] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    hanging: threading.Event = field(default_factory=threading.Event)  # a request is being held
    released: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        try:
            verify_signature(
                self.secret,
                handler.headers.get(TIMESTAMP_HEADER, ""),
                body,
                handler.headers.get(SIGNATURE_HEADER, ""),
            )
            ok, why = True, ""
        except SignatureError as exc:
            ok, why = False, str(exc)
        with self.lock:
            self.received.append(Received(body, dict(handler.headers.items()), ok, why))
            reply = self.script[min(len(self.received), len(self.script)) - 1]
        if reply == "hang":
            self.hanging.set()
            self.released.wait(30)
            return  # the client gave up long ago; no answer
        status = int(reply) if ok else 401
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        with self.lock:
            self.answered += 1


@contextmanager
def webhook_server(receiver: WebhookReceiver) -> Iterator[str]:
    """Serve ``receiver`` on a free port; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver.handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()


class MailHandler:
    """Keeps every accepted message; ``reply`` replaces the DATA answer (e.g. "550 ..." to refuse)."""

    def __init__(self, reply: str | None = None) -> None:
        self.reply = reply
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.attempts = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook name)
        self.attempts += 1
        if self.reply is not None:
            return self.reply
        raw = envelope.original_content or b""
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append((str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos]))
        return "250 OK"


@contextmanager
def smtp_server(handler: MailHandler) -> Iterator[int]:
    """A real aiosmtpd server on a free port (its own thread and loop); yields the port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
