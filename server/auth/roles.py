"""Roles and what each may do. Routes ask for a permission, never for a role by name."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    POLICE = "police"
    PLANNER = "planner"


class Perm(StrEnum):
    SITE = "site"  # the site description (cameras and their positions)
    LIVE = "live"  # live camera states, open incidents, the WebSocket, camera frames
    INCIDENTS = "incidents"  # the incident queue and an incident's details (track ids included)
    ACKNOWLEDGE = "acknowledge"
    WORK = "work"  # assign, resolve, mark as false alarm
    EVIDENCE = "evidence"  # snapshots (every access is audited)
    HISTORY = "history"  # aggregates: volumes, peaks, comparisons, exports, SLA reports
    METRICS = "metrics"  # Prometheus scrape
    ADMIN = "admin"  # users, API keys, alert rules, the audit log


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.OPERATOR: frozenset(
        {Perm.SITE, Perm.LIVE, Perm.INCIDENTS, Perm.ACKNOWLEDGE, Perm.EVIDENCE, Perm.HISTORY, Perm.METRICS}
    ),
    Role.POLICE: frozenset(
        {Perm.SITE, Perm.LIVE, Perm.INCIDENTS, Perm.ACKNOWLEDGE, Perm.WORK, Perm.EVIDENCE, Perm.HISTORY}
    ),
    # Planners see aggregates only: no live track-level data, no incidents' details, no snapshots.
    Role.PLANNER: frozenset({Perm.SITE, Perm.HISTORY}),
}


def allowed(role: Role, perm: Perm) -> bool:
    return perm in ROLE_PERMS[role]
