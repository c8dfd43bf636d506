"""Errors raised by the edge worker."""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every edge error."""


class SourceError(EdgeError):
    """A video source cannot be opened or read (bad path, not a video, stream does not answer)."""


class ModelError(EdgeError):
    """A detector model cannot be loaded."""


class OutboxError(EdgeError):
    """The durable outbox cannot store a message."""
