"""Logging set-up, done once at each entry point, with a filter that redacts credentials.

The redaction is a second line of defence: credentials should never be logged in the first place
(the live socket takes its token in a message, not in its URL), but a library that logs a URL or a
header (uvicorn's WebSocket handshake line, an HTTP client's debug output) cannot leak one either.
"""

from __future__ import annotations

import logging
import re
import sys

REDACTED = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Query strings: ?token=..., &access_token=..., api_key=..., key=...
    (
        re.compile(r"(?i)([?&;](?:token|access_token|api_key|apikey|key|password|secret)=)[^&\s\"'#]+"),
        rf"\1{REDACTED}",
    ),
    # Authorization headers, as text or as the (name, value) tuples of an ASGI scope.
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=,]\s*b?[\"']?\s*)(bearer|basic)\s+[^\s\"',)]+"),
        rf"\1\2 {REDACTED}",
    ),
    # citywatch API keys and JSON Web Tokens wherever they appear.
    (re.compile(r"cwk_[A-Za-z0-9_-]{8,}"), f"cwk_{REDACTED}"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"), REDACTED),
)


def redact(text: str) -> str:
    """``text`` with tokens, API keys, credential query parameters and Authorization values replaced."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: formats the record's message (and traceback) and redacts credentials in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactingFilter` to every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_redaction()
    # Chatty third-party loggers stay quiet unless asked.
    for name in ("ultralytics", "httpx", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
