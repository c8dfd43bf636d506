"""Fleet messages: edges announce themselves, the server pushes each edge its desired config.

One edge worker serves one camera group (the broker ACL already gives each group its own MQTT user,
``edge-<group>``), so the group is the edge's address on these topics:

- ``<prefix>/edges/v1/<site>/<group>`` (edge -> server, retained): :class:`EdgeAnnounce`, what the edge
  runs: software version, model checksums, the config version it applied (or why it rejected one), its
  cameras and host facts. Sent at start, after every config it applied or rejected, and periodically.
- ``<prefix>/config/v1/<site>/<group>`` (server -> edge, retained): :class:`EdgeConfig`, the desired
  cameras of the group with a version that only grows. Retained, so an edge that starts or reconnects
  gets the latest one at once.

Both live outside ``<prefix>/v1/#``, so the data ingest never reads them. Added within contract v1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from contract.errors import ContractError
from contract.topics import ID_PATTERN, MAJOR, _check_id

__all__ = [
    "EdgeAnnounce",
    "EdgeConfig",
    "HostFacts",
    "ModelInfo",
    "announce_topic",
    "config_topic",
    "parse_announce",
    "parse_config",
]

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256.")]
#: A config pushed to an edge is at most this big (hundreds of cameras with lines and zones fit).
MAX_CONFIG_BYTES = 1024 * 1024


class _Fleet(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class ModelInfo(_Fleet):
    """A detector model the edge has loaded."""

    name: str = Field(min_length=1, max_length=500, description="Model name or path as configured.")
    sha256: Sha256 | None = Field(default=None, description="Checksum of the model file(s); None if unknown.")


class HostFacts(_Fleet):
    cores: int = Field(ge=1, description="CPU cores visible to the worker.")
    gpu: str | None = Field(default=None, max_length=200, description="GPU name, when one is usable.")
    free_disk_bytes: int = Field(ge=0, description="Free space where the outbox lives.")


class EdgeAnnounce(_Fleet):
    """What one edge worker runs, retained on its announce topic."""

    kind: Literal["announce"] = "announce"
    schema_version: Literal[1] = 1
    site_id: Id
    group: Id = Field(description="The camera group this edge serves (its address on fleet topics).")
    edge_id: Id = Field(description="The worker's own id (EDGE_ID).")
    version: str = Field(max_length=32, description="Edge software version.")
    models: list[ModelInfo] = Field(default_factory=list, max_length=64)
    config_version: int | None = Field(
        default=None, ge=0, description="Version of the pushed config it runs; None: only its site file."
    )
    config_error: str = Field(
        default="",
        max_length=4000,
        description="Why the last pushed config was rejected (empty when it was applied).",
    )
    rejected_version: int | None = Field(default=None, ge=0, description="The version that was rejected.")
    cameras: list[Id] = Field(default_factory=list, max_length=1000, description="Cameras it runs now.")
    host: HostFacts
    ts: AwareDatetime


class EdgeConfig(_Fleet):
    """The desired cameras of one group. ``cameras`` are site-file camera entries (JSON objects),
    validated by the edge exactly as ``citywatch config check`` validates a site file."""

    kind: Literal["config"] = "config"
    schema_version: Literal[1] = 1
    site_id: Id
    group: Id
    version: int = Field(ge=1, description="Grows with every change; an edge ignores older versions.")
    cameras: list[dict[str, Any]] = Field(max_length=1000)
    models: dict[str, Sha256] = Field(
        default_factory=dict,
        description="Model rollout pins: model name or path -> the SHA-256 it must have on the edge. A "
        "camera whose model does not match is not switched: the whole config is rejected.",
    )
    ts: AwareDatetime


def announce_topic(site_id: str, group: str, prefix: str = "citywatch") -> str:
    _check_id("site_id", site_id)
    _check_id("group", group)
    return f"{prefix}/edges/v{MAJOR}/{site_id}/{group}"


def config_topic(site_id: str, group: str, prefix: str = "citywatch") -> str:
    _check_id("site_id", site_id)
    _check_id("group", group)
    return f"{prefix}/config/v{MAJOR}/{site_id}/{group}"


M = TypeVar("M", bound="_Fleet")


def _parse(model: type[M], payload: bytes) -> M:
    if len(payload) > MAX_CONFIG_BYTES:
        raise ContractError("size", f"<payload>: {len(payload)} bytes exceeds {MAX_CONFIG_BYTES}")
    try:
        return model.model_validate(json.loads(payload))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and ValidationError are ValueErrors
        reason = "schema" if isinstance(exc, ValidationError) else "json"
        raise ContractError(reason, str(exc)[:500]) from exc


def parse_announce(payload: bytes) -> EdgeAnnounce:
    return _parse(EdgeAnnounce, payload)


def parse_config(payload: bytes) -> EdgeConfig:
    return _parse(EdgeConfig, payload)


def dump(message: _Fleet) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()
