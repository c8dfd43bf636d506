"""Alert rules, de-duplication and escalation: pure tables, nothing running."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from contract.messages import IncidentEvent, IncidentMessage, IncidentType, Severity
from server.alerting.rules import (
    AlertingConfig,
    AlertRule,
    Deduplicator,
    TimeWindow,
    due_escalations,
    match,
)

# 2026-11-27 is a Friday; Asia/Ho_Chi_Minh is UTC+7 without DST.
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 22:00 local


def incident(**kw: Any) -> IncidentMessage:
    fields: dict[str, Any] = {
        "msg_id": uuid.uuid4(),
        "site_id": "qn",
        "edge_id": "edge-centre",
        "camera_id": "cam-a",
        "seq": 1,
        "ts": NOW,
        "incident_id": uuid.uuid4(),
        "event": IncidentEvent.START,
        "type": IncidentType.INTRUSION,
        "severity": Severity.WARNING,
        "rule_id": "r1",
        "zone_id": "yard",
        "started_at": NOW,
    }
    fields.update(kw)
    if IncidentEvent(fields["event"]) is IncidentEvent.END:
        fields.setdefault("ended_at", fields["ts"])
    return IncidentMessage(**fields)


def rule(**kw: Any) -> AlertRule:
    return AlertRule.model_validate({"id": "ops", "channels": ["ops-hook"], **kw})


def config(*rules: AlertRule) -> AlertingConfig:
    return AlertingConfig(timezone="Asia/Ho_Chi_Minh", rules=list(rules))


@pytest.mark.parametrize(
    ("rule_fields", "incident_fields", "group", "expected"),
    [
        pytest.param({}, {}, "centre", True, id="empty-rule-matches-all"),
        pytest.param({"types": ["intrusion", "wrong_way"]}, {}, "centre", True, id="type-listed"),
        pytest.param({"types": ["wrong_way"]}, {}, "centre", False, id="type-not-listed"),
        pytest.param({"min_severity": "warning"}, {}, "centre", True, id="severity-equal"),
        pytest.param({"min_severity": "critical"}, {}, "centre", False, id="severity-below"),
        pytest.param({"min_severity": "warning"}, {"severity": "critical"}, "c", True, id="severity-above"),
        pytest.param({"cameras": ["cam-a"]}, {}, "centre", True, id="camera-listed"),
        pytest.param({"cameras": ["cam-b"]}, {}, "centre", False, id="camera-not-listed"),
        pytest.param({"groups": ["centre"]}, {}, "centre", True, id="group-listed"),
        pytest.param({"groups": ["bridges"]}, {}, "centre", False, id="group-not-listed"),
        pytest.param({"zones": ["yard"]}, {}, "centre", True, id="zone-listed"),
        pytest.param({"zones": ["gate"]}, {}, "centre", False, id="zone-not-listed"),
        pytest.param({"zones": ["yard"]}, {"zone_id": None}, "centre", False, id="zone-rule-no-zone"),
        pytest.param({"enabled": False}, {}, "centre", False, id="disabled"),
        pytest.param({}, {"event": "update"}, "centre", True, id="update-event"),
        pytest.param({}, {"event": "end"}, "centre", False, id="end-never-alerts"),
        # 22:00 local; windows in local time.
        pytest.param({"window": {"start": "21:00", "end": "23:00"}}, {}, "c", True, id="window-inside"),
        pytest.param({"window": {"start": "08:00", "end": "18:00"}}, {}, "c", False, id="window-outside"),
        pytest.param({"window": {"start": "22:00", "end": "23:00"}}, {}, "c", True, id="window-start-incl"),
        pytest.param({"window": {"start": "20:00", "end": "22:00"}}, {}, "c", False, id="window-end-excl"),
        pytest.param({"window": {"start": "21:30", "end": "06:00"}}, {}, "c", True, id="midnight-evening"),
        pytest.param(
            {"window": {"start": "21:30", "end": "06:00"}},
            {"ts": NOW + timedelta(hours=4)},  # 02:00 local
            "c",
            True,
            id="midnight-early-morning",
        ),
        pytest.param(
            {"window": {"start": "21:30", "end": "06:00"}, "max_age_s": None},
            {"ts": NOW - timedelta(hours=8)},  # 14:00 local
            "c",
            False,
            id="midnight-afternoon",
        ),
        pytest.param({"max_age_s": 600}, {"ts": NOW - timedelta(minutes=11)}, "c", False, id="replayed-old"),
        pytest.param({"max_age_s": 600}, {"ts": NOW - timedelta(minutes=9)}, "c", True, id="recent"),
        pytest.param(
            {"types": ["intrusion"], "groups": ["centre"], "zones": ["yard"], "min_severity": "critical"},
            {"severity": "critical"},
            "centre",
            True,
            id="all-conditions",
        ),
    ],
)
def test_match(
    rule_fields: dict[str, Any], incident_fields: dict[str, Any], group: str, expected: bool
) -> None:
    matched = match(config(rule(**rule_fields)), incident(**incident_fields), group, NOW)
    assert [r.id for r in matched] == (["ops"] if expected else [])


def test_match_returns_every_matching_rule_in_order() -> None:
    rules = config(
        rule(id="night", window={"start": "20:00", "end": "06:00"}),
        rule(id="day", window={"start": "06:00", "end": "20:00"}),
        rule(id="all"),
    )
    assert [r.id for r in match(rules, incident(), "centre", NOW)] == ["night", "all"]


def test_match_needs_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        match(config(rule()), incident(), "centre", NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"channels": []}, "at least 1", id="no-channels"),
        pytest.param({"colour": "red"}, "Extra inputs", id="unknown-key"),
        pytest.param({"types": ["fire"]}, "Input should be", id="unknown-type"),
        pytest.param({"window": {"start": "10:00", "end": "10:00"}}, "equal", id="empty-window"),
        pytest.param({"cooldown_s": -1}, "greater than or equal", id="negative-cooldown"),
        pytest.param(
            {"escalation": [{"after_s": 600, "channels": ["a"]}, {"after_s": 300, "channels": ["b"]}]},
            "increasing",
            id="escalation-order",
        ),
        pytest.param({"dedup_key": ["colour"]}, "Input should be", id="unknown-dedup-field"),
    ],
)
def test_invalid_rules(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rule(**fields)


def test_config_rejects_duplicate_ids_and_unknown_zone() -> None:
    with pytest.raises(ValidationError, match="duplicate rule ids: ops"):
        config(rule(), rule())
    with pytest.raises(ValidationError, match="unknown time zone"):
        AlertingConfig(timezone="Mars/Olympus", rules=[])


@pytest.mark.parametrize(
    ("start", "end", "local", "inside"),
    [
        ("08:00", "18:00", "07:59", False),
        ("08:00", "18:00", "08:00", True),
        ("08:00", "18:00", "17:59:59", True),
        ("08:00", "18:00", "18:00", False),
        ("22:00", "06:00", "23:59", True),
        ("22:00", "06:00", "00:00", True),
        ("22:00", "06:00", "05:59", True),
        ("22:00", "06:00", "06:00", False),
        ("22:00", "06:00", "12:00", False),
    ],
)
def test_time_window(start: str, end: str, local: str, inside: bool) -> None:
    window = TimeWindow.model_validate({"start": start, "end": end})
    assert window.contains(time.fromisoformat(local)) is inside


# --------------------------------------------------------------------------------------------------
# De-duplication

A, B = uuid.uuid4(), uuid.uuid4()


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([(0, A, "cam-a", "centre", {})], [True], id="first"),
        pytest.param(
            [(0, A, "cam-a", "centre", {}), (5, A, "cam-a", "centre", {})], [True, False], id="repeat"
        ),
        pytest.param(
            [(0, A, "cam-a", "centre", {}), (999, A, "cam-a", "centre", {})],
            [True, False],
            id="same-incident-after-cooldown",
        ),
        pytest.param(
            [(0, A, "cam-a", "centre", {}), (10, B, "cam-b", "centre", {})],
            [True, False],
            id="second-camera-same-event",
        ),
        pytest.param(
            [(0, A, "cam-a", "centre", {}), (301, B, "cam-b", "centre", {})],
            [True, True],
            id="after-cooldown",
        ),
        pytest.param(
            [(0, A, "cam-a", "centre", {}), (10, B, "cam-x", "bridges", {})],
            [True, True],
            id="other-group",
        ),
        pytest.param(
            [(0, A, "cam-a", "centre", {}), (10, B, "cam-b", "centre", {"zone_id": "gate"})],
            [True, True],
            id="other-zone",
        ),
        pytest.param(
            [(0, A, "cam-a", "centre", {}), (10, B, "cam-b", "centre", {"type": "loitering"})],
            [True, True],
            id="other-type",
        ),
        pytest.param(
            [
                (0, A, "cam-a", "centre", {"zone_id": None, "line_id": "L1", "type": "wrong_way"}),
                (3, B, "cam-b", "centre", {"zone_id": None, "line_id": "L1", "type": "wrong_way"}),
            ],
            [True, False],
            id="same-line",
        ),
        pytest.param(
            [
                (0, A, "cam-a", "centre", {"zone_id": None, "line_id": "L1", "type": "wrong_way"}),
                (3, B, "cam-b", "centre", {"zone_id": None, "line_id": "L2", "type": "wrong_way"}),
            ],
            [True, True],
            id="other-line",
        ),
    ],
)
def test_deduplicator(
    steps: list[tuple[float, uuid.UUID, str, str, dict[str, Any]]], expected: list[bool]
) -> None:
    dedup = Deduplicator()
    r = rule(cooldown_s=300)
    got = [
        dedup.admit(r, incident(incident_id=iid, camera_id=cam, **kw), group, NOW + timedelta(seconds=t))
        for t, iid, cam, group, kw in steps
    ]
    assert got == expected


def test_dedup_is_per_rule_and_per_key_fields() -> None:
    dedup = Deduplicator()
    by_camera = rule(id="per-camera", dedup_key=["type", "camera"])
    other = rule(id="other")
    first, second = incident(camera_id="cam-a"), incident(camera_id="cam-b")
    assert dedup.admit(by_camera, first, "centre", NOW)
    assert dedup.admit(other, first, "centre", NOW)  # another rule alerts on the same incident
    assert dedup.admit(by_camera, second, "centre", NOW)  # camera is part of this rule's key
    assert not dedup.admit(other, second, "centre", NOW)


def test_dedup_memory_is_bounded() -> None:
    dedup = Deduplicator(ttl_s=60, max_entries=10)
    r = rule(cooldown_s=0)
    for i in range(50):
        assert dedup.admit(r, incident(), "centre", NOW + timedelta(seconds=i))
    assert len(dedup) <= 10
    late = NOW + timedelta(hours=1)
    assert dedup.admit(r, incident(), "centre", late)
    assert len(dedup) == 1  # everything older than the ttl is gone


# --------------------------------------------------------------------------------------------------
# Escalation

STEPS: list[dict[str, Any]] = [{"after_s": 300, "channels": ["sms"]}, {"after_s": 900, "channels": ["phone"]}]


@pytest.mark.parametrize(
    ("elapsed", "acknowledged", "sent", "levels"),
    [
        pytest.param(299, False, [], [], id="not-yet"),
        pytest.param(300, False, [], [1], id="first-due"),
        pytest.param(600, False, [1], [], id="first-sent"),
        pytest.param(901, False, [1], [2], id="second-due"),
        pytest.param(901, False, [], [1, 2], id="both-due"),
        pytest.param(5000, True, [], [], id="acknowledged"),
    ],
)
def test_escalation(elapsed: float, acknowledged: bool, sent: list[int], levels: list[int]) -> None:
    r = rule(escalation=STEPS)
    due = due_escalations(
        r, NOW, NOW + timedelta(seconds=elapsed), acknowledged=acknowledged, sent_levels=sent
    )
    assert [level for level, _ in due] == levels
    assert all(step.channels == [STEPS[level - 1]["channels"][0]] for level, step in due)


def test_channel_names_cover_escalation() -> None:
    cfg = config(rule(channels=["hook"], escalation=STEPS))
    assert cfg.channel_names() == {"hook", "sms", "phone"}
