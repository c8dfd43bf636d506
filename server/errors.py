"""The server's exception tree, written out once."""

from __future__ import annotations


class ServerError(Exception):
    """Base of every error the server raises on purpose."""


class SettingsError(ServerError):
    """An environment variable has an unusable value."""


class MigrationError(ServerError):
    """Migrations cannot be applied (changed checksum, bad file, failed statement)."""


class DatabaseUnavailableError(ServerError):
    """The database did not answer within the start-up deadline."""


class IngestError(ServerError):
    """The MQTT subscriber could not connect or subscribe."""
