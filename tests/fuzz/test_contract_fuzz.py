"""``parse_message`` under hostile input: it returns a model or raises ``ContractError``, nothing else,
and whatever it accepts survives a round trip through ``dump_message``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from contract import (
    ContractError,
    CountsMessage,
    DirectionCount,
    HealthFlag,
    HeartbeatMessage,
    IncidentEvent,
    IncidentMessage,
    IncidentType,
    Message,
    Movement,
    Point,
    Severity,
    Snapshot,
    SpeedStat,
    StatusMessage,
    StreamState,
    ZoneOccupancy,
    dump_message,
    parse_message,
    parse_topic,
    topic_for,
)
from contract.messages import MAX_PAYLOAD_BYTES, Id
from contract.topics import ID_PATTERN, Topic
from tests.fuzz.values import AWKWARD_SCALARS, JSON_VALUES, nested_json

#: The reasons ``ContractError`` documents.
REASONS = {"json", "schema", "version", "topic", "mismatch", "size"}

ID: TypeAdapter[str] = TypeAdapter(Id)
ids = st.from_regex(ID_PATTERN.replace("^", r"\A").replace("$", r"\Z"), fullmatch=True)
names = st.text(min_size=1, max_size=32)
counts_ = st.integers(min_value=0, max_value=2**63 - 1)
amounts = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
zones = st.one_of(
    st.just(UTC),
    st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(min_value=-23 * 60, max_value=23 * 60)),
    st.timezones(),
)
times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=zones)
unit = st.floats(min_value=0, max_value=1)


def envelope() -> dict[str, Any]:
    return {
        "msg_id": st.uuids(),
        "site_id": ids,
        "edge_id": ids,
        "camera_id": ids,
        "seq": counts_,
        "ts": times,
    }


counts_messages = st.builds(
    lambda start, length, **kw: CountsMessage(bin_start=start, bin_end=start + length, **kw),
    start=times,
    length=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=1)),
    lines=st.lists(st.builds(DirectionCount, line_id=ids, direction=names, cls=names, count=counts_)),
    zones=st.lists(
        st.builds(
            ZoneOccupancy,
            zone_id=ids,
            cls=names,
            mean_count=amounts,
            max_count=counts_,
            entries=counts_,
            mean_dwell_s=st.none() | amounts,
        )
    ),
    speeds=st.lists(
        st.builds(
            SpeedStat,
            line_id=ids,
            direction=names,
            cls=names,
            n=st.integers(min_value=1),
            mean_kmh=amounts,
            p85_kmh=amounts,
        )
    ),
    movements=st.lists(
        st.builds(Movement, junction_id=ids, from_line=ids, to_line=ids, cls=names, count=counts_)
    ),
    frames=counts_,
    fps=amounts,
    health=st.lists(st.sampled_from(HealthFlag)),
    **envelope(),
)
incident_messages = st.builds(
    lambda event, ended, **kw: IncidentMessage(
        event=event, ended_at=ended if ended is not None or event is not IncidentEvent.END else kw["ts"], **kw
    ),
    event=st.sampled_from(IncidentEvent),
    ended=st.none() | times,
    incident_id=st.uuids(),
    type=st.sampled_from(IncidentType),
    severity=st.sampled_from(Severity),
    rule_id=ids,
    zone_id=st.none() | ids,
    line_id=st.none() | ids,
    track_ids=st.lists(st.integers()),
    classes=st.lists(st.text()),
    image_position=st.none() | st.builds(Point, x=unit, y=unit),
    latitude=st.none() | st.floats(min_value=-90, max_value=90),
    longitude=st.none() | st.floats(min_value=-180, max_value=180),
    started_at=times,
    summary=st.text(max_size=500),
    details=st.dictionaries(
        st.text(max_size=10),
        st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
        max_size=4,
    ),
    snapshot=st.none()
    | st.builds(
        Snapshot,
        width=st.integers(min_value=1),
        height=st.integers(min_value=1),
        data_b64=st.text(min_size=4, max_size=40),
    ),
    **envelope(),
)
status_messages = st.builds(
    StatusMessage,
    state=st.sampled_from(StreamState),
    reason=st.text(max_size=200),
    health=st.lists(st.sampled_from(HealthFlag)),
    **envelope(),
)
heartbeat_messages = st.builds(
    HeartbeatMessage,
    fps=amounts,
    source_fps=amounts,
    inference_ms=amounts,
    dropped_frames=counts_,
    outbox_depth=counts_,
    uptime_s=amounts,
    reconnects=counts_,
    health=st.lists(st.sampled_from(HealthFlag)),
    version=st.text(max_size=32),
    **envelope(),
)
messages: st.SearchStrategy[Message] = st.one_of(
    counts_messages, incident_messages, status_messages, heartbeat_messages
)


def topic_of(message: Message) -> Topic:
    return parse_topic(topic_for(message.site_id, message.camera_id, str(message.kind)))


def outcome(payload: bytes | str, topic: Topic | None = None) -> Message | ContractError:
    """The model, or the ``ContractError``; any other exception fails the test."""
    try:
        return parse_message(payload, topic)
    except ContractError as exc:
        error = exc
    assert error.reason in REASONS, error.reason
    assert str(error), "a ContractError must say what is wrong"
    return error


def assert_round_trips(message: Message, topic: Topic | None = None) -> None:
    """What the contract accepts, it can also write: serialise -> parse gives an equal model."""
    wire = dump_message(message)
    back = parse_message(wire, topic)
    assert back == message
    assert dump_message(back) == wire


# --------------------------------------------------------------------------------------------------
# Valid messages


@settings(max_examples=300, deadline=None)
@given(messages)
def test_valid_messages_round_trip(message: Message) -> None:
    assert_round_trips(message, topic_of(message))


@settings(max_examples=100, deadline=None)
@given(messages, ids, st.sampled_from(["counts", "incident", "status", "heartbeat"]))
def test_topic_disagreement_is_a_mismatch(message: Message, camera: str, kind: str) -> None:
    topic = parse_topic(topic_for(message.site_id, camera, kind))
    result = outcome(dump_message(message), topic)
    agrees = camera == message.camera_id and kind == str(message.kind)
    if agrees:
        assert result == message
    else:
        assert isinstance(result, ContractError) and result.reason == "mismatch"


# --------------------------------------------------------------------------------------------------
# Hostile input


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(payload: bytes) -> None:
    result = outcome(payload)
    if not isinstance(result, ContractError):
        assert_round_trips(result)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_documents(value: Any) -> None:
    result = outcome(json.dumps(value).encode())
    if not isinstance(result, ContractError):
        assert_round_trips(result)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key path inside a JSON value, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


#: JSON text that json.dumps never writes: deeper than any recursion limit, longer than int() allows.
RAW_JSON = st.one_of(
    st.integers(min_value=1, max_value=5000).map(nested_json),
    st.integers(min_value=4000, max_value=10_000).map(lambda n: "9" * n),
    st.sampled_from(["1e999999", "-1e999999", "NaN", "Infinity", "-0", "1E-400", '"\\ud800"', '"\\u0000"']),
)


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """Apply one random change at one random place of ``doc``; a text splice returns the JSON text."""
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    op = data.draw(
        st.sampled_from(["drop", "replace", "nest", "splice", "add", "duplicate-list", "stringify"]),
        label="op",
    )
    if not path:
        if op == "splice":
            return data.draw(RAW_JSON, label="raw")
        return data.draw(JSON_VALUES, label="root") if op == "replace" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    if op == "drop":
        del parent[key]
    elif op == "replace":
        parent[key] = data.draw(AWKWARD_SCALARS | JSON_VALUES, label="value")
    elif op == "nest":
        parent[key] = data.draw(st.sampled_from([[parent[key]], {"value": parent[key]}]), label="nested")
    elif op == "splice":
        marker = "__splice_marker__"
        parent[key] = marker
        return json.dumps(doc).replace(f'"{marker}"', data.draw(RAW_JSON, label="raw"))
    elif op == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12), label="new key")] = data.draw(JSON_VALUES, label="value")
    elif op == "duplicate-list" and isinstance(parent[key], list):
        parent[key] = parent[key] * data.draw(st.integers(min_value=0, max_value=50), label="times")
    elif op == "stringify":
        parent[key] = json.dumps(parent[key])
    return doc


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_mutated_valid_payloads(message: Message, data: st.DataObject) -> None:
    doc: Any = json.loads(dump_message(message))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        doc = _mutate(doc, data)
        if isinstance(doc, str):
            break  # already JSON text (a splice)
    payload = doc if isinstance(doc, str) else json.dumps(doc)
    topic = data.draw(st.none() | st.just(topic_of(message)), label="topic")
    result = outcome(payload.encode(), topic)
    if not isinstance(result, ContractError):
        assert_round_trips(result, topic)


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_corrupted_wire_bytes(message: Message, data: st.DataObject) -> None:
    wire = bytearray(dump_message(message))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="edits")):
        at = data.draw(st.integers(min_value=0, max_value=len(wire)), label="at")
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]), label="op")
        if op == "flip" and at < len(wire):
            wire[at] ^= data.draw(st.integers(min_value=1, max_value=255), label="bits")
        elif op == "insert":
            wire[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        elif op == "delete":
            del wire[at : at + data.draw(st.integers(min_value=1, max_value=8), label="n")]
        elif op == "truncate":
            del wire[at:]
    result = outcome(bytes(wire))
    if not isinstance(result, ContractError):
        assert_round_trips(result)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | JSON_VALUES.map(json.dumps) | messages.map(lambda m: dump_message(m).decode()))
def test_text_and_bytes_are_judged_alike(text: str) -> None:
    """A payload given as ``str`` gets the same verdict as its UTF-8 bytes (the size cap included)."""
    as_text = outcome(text)
    as_bytes = outcome(text.encode("utf-8", "surrogatepass"))
    if isinstance(as_text, ContractError) or isinstance(as_bytes, ContractError):
        assert isinstance(as_text, ContractError) and isinstance(as_bytes, ContractError)
        assert as_text.reason == as_bytes.reason
    else:
        assert as_text == as_bytes


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70) | ids.map(lambda i: i + "\n") | ids)
def test_topics_accept_exactly_the_ids_payloads_accept(value: str) -> None:
    """A topic level and a payload id follow one rule, so no topic names a camera no payload can."""
    try:
        ID.validate_python(value)
    except ValidationError:
        payload_ok = False
    else:
        payload_ok = True
    try:
        topic: str | None = topic_for(value, value, "counts")
    except ContractError as exc:
        reason: str | None = exc.reason
        topic = None
    else:
        reason = None
    if topic is None:
        assert reason == "topic"
        assert not payload_ok, f"topic_for rejects the valid id {value!r}"
    else:
        assert payload_ok, f"topic_for accepts {value!r}, which no payload may carry"
        assert parse_topic(topic).camera_id == value


# --------------------------------------------------------------------------------------------------
# The 2 MiB cap


def _padded(message: Message, size: int, pad: str = " ") -> str:
    """The message's JSON padded with whitespace inside the object to exactly ``size`` UTF-8 bytes."""
    wire = dump_message(message).decode()
    short = size - len(wire.encode())
    assert short >= 0
    if pad == " ":
        return wire[:-1] + " " * short + "}"
    # A multi-byte character per slot (in an ignored field) where the size allows, spaces for the rest.
    chars = max(0, (short - len(', "pad": ""')) // len(pad.encode()))
    field = f', "pad": "{pad * chars}"' if chars else ""
    body = wire[:-1] + field
    return body + " " * (size - len(body.encode()) - 1) + "}"


@settings(max_examples=20, deadline=None)
@given(messages, st.integers(min_value=-3, max_value=3), st.sampled_from([" ", "é", "💥"]))
def test_size_cap_is_two_mebibytes_of_utf8(message: Message, offset: int, pad: str) -> None:
    size = MAX_PAYLOAD_BYTES + offset
    text = _padded(message, size, pad)
    assert len(text.encode()) == size
    for payload in (text, text.encode()):
        result = outcome(payload)
        if size > MAX_PAYLOAD_BYTES:
            assert isinstance(result, ContractError) and result.reason == "size"
            assert str(MAX_PAYLOAD_BYTES) in str(result)
        else:
            assert result == message
