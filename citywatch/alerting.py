"""The ``alerting`` section of the site file: alert rules, delivery channels and SLA targets.

It lives here (not in ``server``) so that ``citywatch config check`` validates it with the rest of the
site file. Secrets (webhook keys, SMTP passwords) are written as ``${VAR}`` and read from the
environment when the file is loaded.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from contract.messages import IncidentType, Severity
from contract.topics import ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN, description="Identifier: letters, digits, '_' and '-'.")]
DedupField = Literal["type", "rule", "camera", "group", "zone", "line"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeWindow(_Strict):
    """Local time of day ``[start, end)`` in the site's time zone; ``start > end`` crosses midnight."""

    start: time = Field(description="Local start time, e.g. 22:00.")
    end: time = Field(description="Local end time (exclusive), e.g. 06:00.")

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("start and end are equal; leave the window out to match all day")
        return self

    def contains(self, local: time) -> bool:
        local = local.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class EscalationStep(_Strict):
    after_s: float = Field(gt=0, description="Seconds after the alert without acknowledgement.")
    channels: list[Id] = Field(min_length=1, description="Channels notified at this step.")


class AlertRule(_Strict):
    """One rule. Empty match lists match everything; the match fields must all agree."""

    id: Id
    description: str = Field(
        default="", max_length=1000, pattern=r"^[^\x00]*$", description="What it is for."
    )
    enabled: bool = True
    types: list[IncidentType] = Field(default_factory=list, description="Incident types; empty: any.")
    min_severity: Severity = Field(default=Severity.INFO, description="Lowest severity that alerts.")
    cameras: list[Id] = Field(default_factory=list, description="Camera ids; empty: any.")
    groups: list[Id] = Field(default_factory=list, description="Camera groups; empty: any.")
    zones: list[Id] = Field(default_factory=list, description="Zone ids; empty: any (or none).")
    window: TimeWindow | None = Field(default=None, description="Only at these local times of day.")
    channels: list[Id] = Field(min_length=1, description="Channels notified first.")
    cooldown_s: float = Field(
        default=300.0, ge=0, description="The same dedup key alerts again only after this long."
    )
    dedup_key: tuple[DedupField, ...] = Field(
        default=("type", "zone", "line", "group"),
        min_length=1,
        description="Incidents equal on these fields within the cooldown are one event (several cameras "
        "seeing the same thing).",
    )
    max_age_s: float | None = Field(
        default=900.0,
        gt=0,
        description="Incidents reported longer ago than this do not alert (an edge replaying its outbox "
        "after an outage); null: no limit.",
    )
    escalation: list[EscalationStep] = Field(
        default_factory=list, description="Further channels while the alert stays unacknowledged."
    )

    @field_validator("escalation")
    @classmethod
    def _increasing(cls, steps: list[EscalationStep]) -> list[EscalationStep]:
        times = [s.after_s for s in steps]
        if times != sorted(set(times)):
            raise ValueError("escalation steps must have strictly increasing after_s")
        return steps


def unique_rule_ids(rules: list[AlertRule]) -> list[AlertRule]:
    """``rules`` unchanged, or ValueError naming the rule ids used twice."""
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
    return rules


class WebhookChannelConfig(_Strict):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", description="Where alerts are POSTed.")
    secret: SecretStr = Field(min_length=16, description="HMAC-SHA256 key (write it as ${VAR}).")
    timeout_s: float = Field(default=10.0, gt=0, description="Per-request timeout.")


class SmtpChannelConfig(_Strict):
    kind: Literal["smtp"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(description="From address.")
    recipients: list[str] = Field(min_length=1, description="To addresses.")
    security: Literal["none", "starttls", "tls"] = Field(
        default="starttls", description="'none' only for a relay on a trusted network."
    )
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="Write it as ${VAR}.")


class MqttChannelConfig(_Strict):
    kind: Literal["mqtt"]
    prefix: str = Field(
        default="citywatch",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Alerts go to <prefix>/alerts/<site>/<type>.",
    )


ChannelConfig = Annotated[
    WebhookChannelConfig | SmtpChannelConfig | MqttChannelConfig, Field(discriminator="kind")
]

#: Always present: pushes alerts to the map and police console (WebSocket).
LIVE_CHANNEL = "live"


class SlaTargets(_Strict):
    acknowledge_s: float = Field(default=300.0, gt=0, description="Time to acknowledge an incident.")
    resolve_s: float = Field(default=3600.0, gt=0, description="Time to resolve (or dismiss) an incident.")


class AlertingSection(_Strict):
    """Rules, channels (by name) and SLA targets. The channel ``live`` always exists."""

    channels: dict[Id, ChannelConfig] = Field(default_factory=dict, description="Delivery channels by name.")
    rules: list[AlertRule] = Field(default_factory=list, description="Which incidents alert whom.")
    sla: SlaTargets = Field(default_factory=SlaTargets)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[AlertRule]) -> list[AlertRule]:
        return unique_rule_ids(rules)

    @model_validator(mode="after")
    def _known_channels(self) -> AlertingSection:
        known = {*self.channels, LIVE_CHANNEL}
        for rule in self.rules:
            named = [*rule.channels, *(c for s in rule.escalation for c in s.channels)]
            unknown = sorted({c for c in named if c not in known})
            if unknown:
                raise ValueError(f"rule {rule.id!r} names unknown channel(s): {', '.join(unknown)}")
        return self
