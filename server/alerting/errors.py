"""The alerting exception tree, written out once."""

from __future__ import annotations

from server.errors import ServerError


class AlertingError(ServerError):
    """Base of every error the alerting package raises on purpose."""


class DeliveryError(AlertingError):
    """A channel could not deliver an alert.

    ``retryable`` is false for answers that will not change on retry (HTTP 4xx other than 408/429,
    SMTP 5xx, an MQTT "not authorized"); ``status`` is the peer's code when there was one.
    """

    def __init__(self, channel: str, message: str, *, status: str | None = None, retryable: bool = True):
        self.channel = channel
        self.status = status
        self.retryable = retryable
        super().__init__(f"{channel}: {message}")


class SignatureError(AlertingError):
    """A webhook signature is malformed, stale or does not match."""
