"""Bad input is rejected with a documented reason; good input passes. No I/O."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.site import load_site
from contract import ContractError, dump_message, parse_message, parse_topic
from server.ingest.validate import Accepted, Incoming, Rejected, Validator
from tests.server.helpers import counts, write_site

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@pytest.fixture
def validator(tmp_path: Path) -> Validator:
    site = load_site(write_site(tmp_path, "s1", "pfx", ["cam-a"]))
    return Validator(site, max_future_s=300, max_age_days=365, clock=NOW.timestamp)


def incoming(topic: str, payload: bytes) -> Incoming:
    return Incoming(1, 1, topic, payload, NOW.timestamp())


TOPIC = "pfx/v1/s1/cam-a/counts"


def good(**kw: object) -> bytes:
    return dump_message(counts("s1", "cam-a", 1, NOW - timedelta(minutes=1), ts=NOW, **kw))  # type: ignore[arg-type]


def test_good_message_is_accepted(validator: Validator) -> None:
    assert isinstance(validator.check(incoming(TOPIC, good())), Accepted)


def _mutated(**changes: object) -> bytes:
    raw = json.loads(good())
    for k, v in changes.items():
        if v is None:
            raw.pop(k)
        else:
            raw[k] = v
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        pytest.param(TOPIC, b"{not json", "json", id="malformed-json"),
        pytest.param(TOPIC, _mutated(schema_version=2), "version", id="wrong-schema-version"),
        pytest.param(TOPIC, _mutated(frames=None), "schema", id="missing-field"),
        pytest.param(TOPIC, b"x" * (10 * 1024 * 1024), "size", id="ten-megabytes"),
        pytest.param(
            "pfx/v1/s1/cam-zz/counts", _mutated(camera_id="cam-zz"), "unknown_camera", id="unknown-camera"
        ),
        pytest.param("pfx/v1/s2/cam-a/counts", _mutated(site_id="s2"), "unknown_site", id="other-site"),
        pytest.param("pfx/v1/s1/cam-b/counts", good(), "mismatch", id="topic-mismatch"),
        pytest.param("pfx/v2/s1/cam-a/counts", good(), "version", id="topic-major"),
        pytest.param(TOPIC, _mutated(ts=(NOW + timedelta(minutes=6)).isoformat()), "future", id="future"),
        pytest.param(
            TOPIC, _mutated(ts=(NOW - timedelta(days=3650)).isoformat()), "too_old", id="ten-years-old"
        ),
        # Names the site config does not know (issue 12, item 8): free text must not reach exports.
        pytest.param(
            TOPIC, good(cells={("L1", "nosuchdirection", "car"): 1}), "unknown_name", id="direction"
        ),
        pytest.param(
            TOPIC, good(cells={("L1", "east", "car"): 1}), "unknown_name", id="other-lines-direction"
        ),
        pytest.param(TOPIC, good(cells={("L1", "north", "=HYPERLINK()"): 1}), "unknown_name", id="class"),
        pytest.param(
            TOPIC, good(cells={("L1", "north", "airplane"): 1}), "unknown_name", id="coco-not-listed"
        ),
        pytest.param(TOPIC, good(cells={("L9", "north", "car"): 1}), "unknown_name", id="line"),
    ],
)
def test_bad_input_is_rejected_with_reason(
    validator: Validator, topic: str, payload: bytes, reason: str
) -> None:
    result = validator.check(incoming(topic, payload))
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert result.detail


def test_every_configured_direction_and_class_passes(validator: Validator) -> None:
    cells = {(ln, d, c): 1 for ln, dirs in (("L1", ("north", "south")), ("L2", ("east", "west")))
             for d in dirs for c in ("person", "bicycle", "car", "motorcycle", "bus", "truck")}  # fmt: skip
    assert isinstance(validator.check(incoming(TOPIC, good(cells=cells))), Accepted)


def test_unknown_direction_detail_names_the_allowed_ones(validator: Validator) -> None:
    result = validator.check(incoming(TOPIC, good(cells={("L1", "nosuchdirection", "car"): 1})))
    assert isinstance(result, Rejected)
    assert "'nosuchdirection'" in result.detail and "'north' or 'south'" in result.detail


def test_rejection_keeps_ids_for_the_log(validator: Validator) -> None:
    mid = uuid.uuid4()
    raw = json.loads(good())
    raw.update(msg_id=str(mid), camera_id="cam-zz")
    result = validator.check(incoming("pfx/v1/s1/cam-zz/counts", json.dumps(raw).encode()))
    assert isinstance(result, Rejected)
    assert (result.camera_id, result.msg_id) == ("cam-zz", str(mid))


@pytest.mark.parametrize(
    "payload",
    [b"[" * 2000, b'{"camera_id": ' + b"9" * 5000 + b"}", b'{"camera_id": "c", "msg_id": [' * 500],
    ids=["deep-nesting", "huge-integer", "deep-object"],
)
def test_hostile_payloads_become_dead_letters(validator: Validator, payload: bytes) -> None:
    checked = validator.check(incoming(TOPIC, payload))  # raised RecursionError / ValueError before
    assert isinstance(checked, Rejected) and checked.reason == "json"


def _full_path(topic: str, payload: bytes) -> str:
    """The contract's own parse (no fast path): its reason, or "ok"."""
    try:
        parse_message(payload, parse_topic(topic, "pfx"))
    except ContractError as exc:
        return exc.reason
    return "ok"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(_mutated(schema_version=None), id="no-schema-version"),  # the model has a default
        pytest.param(_mutated(kind=None), id="no-kind"),  # the model has a default
        pytest.param(_mutated(kind="heartbeat"), id="other-kind"),
        pytest.param(_mutated(camera_id="cam-b"), id="other-camera"),
        pytest.param(_mutated(seq=2**64), id="seq-beyond-bigint"),
        pytest.param(_mutated(fps="NaN"), id="nan-string"),
        pytest.param(good().replace(b'"fps":10.0', b'"fps":NaN'), id="nan-literal"),
        pytest.param(good().replace(b"{", b'{"frames":-1,', 1), id="duplicate-key-first-bad"),
        pytest.param(good().replace(b"{", b'{"frames":"x",', 1), id="duplicate-key-first-wrong-type"),
        pytest.param(good() + b" ", id="trailing-space"),
        pytest.param(good(), id="good"),
    ],
)
def test_fast_path_agrees_with_the_contract(validator: Validator, payload: bytes) -> None:
    """The validator's fast path (straight from JSON by the topic's model) accepts exactly what the
    contract's full parse accepts, and a rejection carries the contract's reason."""
    got = validator.check(incoming(TOPIC, payload))
    want = _full_path(TOPIC, payload)
    assert (got.reason if isinstance(got, Rejected) else "ok") == want
