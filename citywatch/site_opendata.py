"""The ``open_data`` section of the site file: what is published without login, with which privacy
rules (delay, minimum cell size k), under which licence, and where agency pushes go.

It lives in ``citywatch`` (not ``server``) so that ``citywatch config check`` validates it with the rest
of the site file. A context broker's token is written as ``${VAR}`` and read from the environment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Publisher(_Strict):
    name: str = Field(default="Sở Giao thông Vận tải", min_length=1, description="Who publishes the data.")
    url: str = Field(default="", description="The publisher's home page ('' = none).")
    email: str = Field(default="", description="Contact address for the datasets ('' = none).")


class ContextBroker(_Strict):
    """An NGSI-LD context broker of another agency that receives each closed hour (and incidents)."""

    url: HttpUrl = Field(description="Broker base URL; /ngsi-ld/v1/entityOperations/upsert is appended.")
    tenant: str = Field(default="", description="NGSILD-Tenant header ('' = default tenant).")
    token: SecretStr | None = Field(default=None, description="Bearer token for the broker, if it needs one.")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Per request.")
    max_attempts: int = Field(default=6, ge=1, le=50, description="Tries before a batch is dead-lettered.")
    backoff_s: float = Field(default=2.0, gt=0, le=600, description="First retry delay; doubles each try.")
    interval_s: float = Field(default=60.0, gt=0, le=3600, description="How often the pusher looks for work.")
    batch: int = Field(default=200, ge=1, le=1000, description="Entities per upsert request.")
    close_after_s: int = Field(
        default=300, ge=0, le=86400, description="An hour is closed (and pushed) this long after it ends."
    )
    backfill_hours: int = Field(default=24, ge=0, le=24 * 90, description="Hours pushed on the first run.")


class OpenDataSection(_Strict):
    enabled: bool = Field(default=True, description="Serve /open/v1 at all.")
    publish_counts: bool = Field(default=True, description="Publish traffic counts (aggregates only).")
    publish_incidents: bool = Field(
        default=False, description="Publish open incidents as NGSI-LD Alert entities (off by default)."
    )
    delay_s: int = Field(
        default=3600, ge=0, le=7 * 86400, description="An hour or day is published this long after it ends."
    )
    k: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Cells (camera, line, direction, class, bucket) counting 1..k-1 are suppressed.",
    )
    cache_s: float = Field(default=300.0, ge=0, le=86400, description="Public answers are cached this long.")
    rate_per_min: int = Field(default=120, ge=1, le=100_000, description="Requests per minute per client.")
    licence: str = Field(default="CC-BY-4.0", min_length=1, description="SPDX id of the data licence.")
    licence_url: str = Field(default="https://creativecommons.org/licenses/by/4.0/", description="Its text.")
    publisher: Publisher = Field(default_factory=Publisher)
    base_url: str = Field(
        default="", description="Public address of this server for catalogue links ('' = from the request)."
    )
    dump_days: int = Field(default=90, ge=1, le=3650, description="Daily dumps kept (and catalogued).")
    dump_interval_s: float = Field(
        default=60.0, gt=0, le=86400, description="How often the dump job looks for days to write."
    )
    broker: ContextBroker | None = Field(
        default=None, description="Push to this NGSI-LD broker; none if unset."
    )
