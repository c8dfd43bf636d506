"""Delivery confirmations, server -> edge: which sequence numbers of a camera the server has committed.

Topic ``<prefix>/acks/v1/<site>/<camera>`` (outside ``<prefix>/v1/#``, so the server never reads its own
confirmations as data). With end-to-end confirmation on, an edge keeps each message in its outbox until
the server confirms its ``seq``, and sends everything unconfirmed again after a reconnect: a message the
broker acknowledged but lost (a crash before it saved it) is sent again instead of lost. The server
confirms what it committed, duplicates included, so a lost confirmation only costs a re-send.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from contract.errors import ContractError
from contract.topics import ID_PATTERN, ack_topic

__all__ = ["AckMessage", "ack_topic", "parse_ack", "ranges"]

Id = Annotated[str, Field(pattern=ID_PATTERN)]
SeqRange = tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]


class AckMessage(BaseModel):
    """Sequence numbers of one camera that the server has stored, as inclusive ranges."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["ack"] = "ack"
    site_id: Id
    camera_id: Id
    seqs: list[SeqRange] = Field(
        min_length=1, max_length=10_000, description="Inclusive [first, last] ranges."
    )
    ts: AwareDatetime = Field(description="When the server committed them (UTC).")

    def covers(self) -> Iterable[int]:
        for first, last in self.seqs:
            yield from range(first, last + 1)


def ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges of a set of sequence numbers: ``{1, 2, 3, 7}`` -> ``[(1, 3), (7, 7)]``."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def parse_ack(payload: bytes) -> AckMessage:
    try:
        return AckMessage.model_validate(json.loads(payload))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and ValidationError are ValueErrors
        reason = "schema" if isinstance(exc, ValidationError) else "json"
        raise ContractError(reason, str(exc)[:500]) from exc
