"""Alert rules: which incidents alert whom, plus de-duplication and escalation timing.

Everything here is pure: time comes in as an argument, so the same inputs give the same answers.
"""

from __future__ import annotations

import zoneinfo
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from citywatch.alerting import AlertRule, DedupField, EscalationStep, TimeWindow, unique_rule_ids
from citywatch.site import TimeZoneName
from contract.messages import IncidentEvent, IncidentMessage, Severity

__all__ = ["AlertRule", "AlertingConfig", "Deduplicator", "EscalationStep", "TimeWindow", "match"]

_K = TypeVar("_K", bound=tuple[object, ...])
_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertingConfig(BaseModel):
    """The alert rules of one site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: TimeZoneName = Field(description="IANA time zone the rule windows are written in (the site's).")
    rules: list[AlertRule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[AlertRule]) -> list[AlertRule]:
        return unique_rule_ids(rules)

    def channel_names(self) -> set[str]:
        """Every channel any rule or escalation step names (to check against the configured ones)."""
        names = {c for r in self.rules for c in r.channels}
        return names | {c for r in self.rules for s in r.escalation for c in s.channels}


def rule_matches(
    rule: AlertRule, incident: IncidentMessage, camera_group: str, now: datetime, tz: zoneinfo.ZoneInfo
) -> bool:
    """Whether one rule selects this incident message (its time of day is the message's ``ts``)."""
    if not rule.enabled or incident.event is IncidentEvent.END:
        return False
    if rule.types and incident.type not in rule.types:
        return False
    if _SEVERITY_RANK[incident.severity] < _SEVERITY_RANK[rule.min_severity]:
        return False
    if rule.cameras and incident.camera_id not in rule.cameras:
        return False
    if rule.groups and camera_group not in rule.groups:
        return False
    if rule.zones and incident.zone_id not in rule.zones:
        return False
    if rule.max_age_s is not None and (now - incident.ts).total_seconds() > rule.max_age_s:
        return False
    return rule.window is None or rule.window.contains(incident.ts.astimezone(tz).time())


def match(
    rules: AlertingConfig, incident: IncidentMessage, camera_group: str, now: datetime
) -> list[AlertRule]:
    """The rules that select ``incident`` (from a camera of ``camera_group``) at ``now`` (aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    tz = zoneinfo.ZoneInfo(rules.timezone)
    return [r for r in rules.rules if rule_matches(r, incident, camera_group, now, tz)]


def dedup_key(rule: AlertRule, incident: IncidentMessage, camera_group: str) -> tuple[str, ...]:
    """The event identity of ``incident`` under ``rule``: its ``dedup_key`` fields, in order."""
    values: dict[DedupField, str | None] = {
        "type": incident.type.value,
        "rule": incident.rule_id,
        "camera": incident.camera_id,
        "group": camera_group,
        "zone": incident.zone_id,
        "line": incident.line_id,
    }
    return (rule.id, *(f"{f}={values[f] or ''}" for f in rule.dedup_key))


class Deduplicator:
    """One alert per event and rule.

    An event is one ``incident_id`` (the edge repeats start/update messages, and redelivers), or
    several incidents with the same :func:`dedup_key` within the rule's cooldown (several cameras of a
    group seeing the same wrong-way driver). The cooldown runs from the alert, so a lasting condition
    alerts again once per cooldown. Memory is bounded: entries older than ``ttl_s`` (which caps every
    cooldown) or beyond ``max_entries`` are forgotten. ``now`` is the server's clock, never the edge's.
    """

    def __init__(self, ttl_s: float = 6 * 3600.0, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._incidents: OrderedDict[tuple[str, UUID], datetime] = OrderedDict()
        self._keys: OrderedDict[tuple[str, ...], datetime] = OrderedDict()

    def admit(self, rule: AlertRule, incident: IncidentMessage, camera_group: str, now: datetime) -> bool:
        """True when this incident is a new event for ``rule`` (and remember it); False for repeats."""
        self._forget(self._incidents, now)
        self._forget(self._keys, now)
        seen = (rule.id, incident.incident_id)
        if seen in self._incidents:
            self._remember(self._incidents, seen, now)
            return False
        self._remember(self._incidents, seen, now)
        key = dedup_key(rule, incident, camera_group)
        last = self._keys.get(key)
        if last is not None and (now - last).total_seconds() < rule.cooldown_s:
            return False
        self._remember(self._keys, key, now)
        return True

    @staticmethod
    def _remember(store: OrderedDict[_K, datetime], key: _K, now: datetime) -> None:
        store[key] = now
        store.move_to_end(key)  # keeps the store ordered by time, so forgetting pops from the front

    def _forget(self, store: OrderedDict[_K, datetime], now: datetime) -> None:
        while store:
            oldest, at = next(iter(store.items()))
            if (now - at).total_seconds() <= self._ttl_s and len(store) < self._max_entries:
                break
            del store[oldest]

    def __len__(self) -> int:
        return len(self._incidents)


def due_escalations(
    rule: AlertRule, raised_at: datetime, now: datetime, *, acknowledged: bool, sent_levels: Sequence[int]
) -> list[tuple[int, EscalationStep]]:
    """Escalation steps (level from 1, step) due at ``now`` and not yet sent; none once acknowledged."""
    if acknowledged:
        return []
    elapsed = (now - raised_at).total_seconds()
    return [
        (level, step)
        for level, step in enumerate(rule.escalation, start=1)
        if elapsed >= step.after_s and level not in sent_levels
    ]
