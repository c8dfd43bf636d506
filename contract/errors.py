"""Errors raised by the wire contract."""

from __future__ import annotations


class ContractError(ValueError):
    """A topic or payload does not match the contract.

    ``reason`` is a short machine-readable cause (``json``, ``schema``, ``version``, ``topic``,
    ``mismatch``, ``size``); ``str(exc)`` names the offending field(s).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
