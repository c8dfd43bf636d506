"""The wire contract: round trips, topic agreement, field-named errors, schema freshness."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contract import (
    ContractError,
    CountsMessage,
    DirectionCount,
    IncidentEvent,
    IncidentMessage,
    IncidentType,
    Severity,
    dump_message,
    parse_message,
    parse_topic,
    topic_for,
)
from contract.schema import render_schemas, write_schemas
from tests.conftest import ROOT

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def counts(**over: Any) -> CountsMessage:
    fields: dict[str, Any] = dict(
        msg_id=uuid.uuid4(),
        site_id="quynhon",
        edge_id="edge-1",
        camera_id="cam-1",
        seq=7,
        ts=T0,
        bin_start=T0,
        bin_end=T0 + timedelta(seconds=60),
        frames=600,
        fps=10.0,
        lines=[DirectionCount(line_id="L1", direction="northbound", cls="motorcycle", count=12)],
    )
    fields.update(over)
    return CountsMessage(**fields)


def test_counts_round_trip_and_topic() -> None:
    msg = counts()
    topic = parse_topic(topic_for("quynhon", "cam-1", "counts"))
    back = parse_message(dump_message(msg), topic)
    assert back == msg
    assert str(topic) == "citywatch/v1/quynhon/cam-1/counts"


def test_incident_round_trip() -> None:
    msg = IncidentMessage(
        msg_id=uuid.uuid4(),
        site_id="quynhon",
        edge_id="e",
        camera_id="cam-1",
        seq=1,
        ts=T0,
        incident_id=uuid.uuid4(),
        event=IncidentEvent.START,
        type=IncidentType.WRONG_WAY,
        severity=Severity.CRITICAL,
        rule_id="ww",
        line_id="L1",
        track_ids=[4],
        started_at=T0,
    )
    assert parse_message(dump_message(msg)) == msg


def test_times_are_normalized_to_utc() -> None:
    from zoneinfo import ZoneInfo

    local = T0.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    msg = counts(ts=local, bin_start=local, bin_end=local + timedelta(seconds=60))
    assert msg.ts.utcoffset() == timedelta(0) and msg.bin_start == T0


def test_unknown_fields_are_ignored_within_a_major_version() -> None:
    raw = json.loads(dump_message(counts()))
    raw["added_in_1_1"] = {"x": 1}
    assert isinstance(parse_message(json.dumps(raw)), CountsMessage)


def _raw(**changes: Any) -> bytes:
    raw = json.loads(dump_message(counts()))
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        pytest.param(b"{not json", "json", "<payload>", id="malformed-json"),
        pytest.param(b"[1, 2]", "schema", "<payload>", id="not-an-object"),
        pytest.param(_raw(schema_version=2), "version", "schema_version", id="wrong-version"),
        pytest.param(_raw(seq=None), "schema", "counts.seq", id="missing-seq"),
        pytest.param(_raw(seq=-1), "schema", "counts.seq", id="negative-seq"),
        pytest.param(_raw(ts="2026-11-27T08:00:00"), "schema", "counts.ts", id="naive-time"),
        pytest.param(_raw(kind="weather"), "schema", "kind", id="unknown-kind"),
        pytest.param(_raw(bin_end="2026-11-27T07:00:00Z"), "schema", "bin_end", id="bin-backwards"),
        pytest.param(_raw(camera_id="cam/1"), "schema", "counts.camera_id", id="id-with-slash"),
        pytest.param(b"{" + b" " * (3 * 1024 * 1024) + b"}", "size", "<payload>", id="too-large"),
    ],
)
def test_bad_payloads_name_the_field(payload: bytes, reason: str, field: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_message(payload)
    assert info.value.reason == reason
    assert field in str(info.value)


def test_payload_must_agree_with_its_topic() -> None:
    topic = parse_topic("citywatch/v1/quynhon/cam-2/counts")
    with pytest.raises(ContractError, match="camera_id: 'cam-1' does not match") as info:
        parse_message(dump_message(counts()), topic)
    assert info.value.reason == "mismatch"


@pytest.mark.parametrize(
    "topic",
    [
        "citywatch/v2/quynhon/cam/counts",
        "citywatch/v1/quynhon/cam",
        "other/v1/q/c/counts",
        "citywatch/v1/quynhon/cam/weather",
        "citywatch/v1/q+/cam/counts",
    ],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(ContractError):
        parse_topic(topic)


def test_json_schemas_are_current() -> None:
    stale = write_schemas(ROOT / "schemas", check=True)
    assert stale == [], f"stale: {stale}; run `citywatch contract schemas`"
    assert set(render_schemas()) == {
        "v1/counts.json",
        "v1/incident.json",
        "v1/status.json",
        "v1/heartbeat.json",
        "v1/evidence.json",
        "v1/ack.json",
        "v1/announce.json",
        "v1/config.json",
    }


def test_contract_imports_neither_edge_nor_server() -> None:
    for path in (ROOT / "contract").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import edge" not in text and "from edge" not in text, path
        assert "import server" not in text and "from server" not in text, path
        assert "from citywatch" not in text, path
