"""The site config loader under hostile input: a ``SiteConfig`` or a ``ConfigError`` naming where each
problem is, never another exception."""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from citywatch.site import ConfigError, SiteConfig, load_site, parse_site
from tests.conftest import ROOT
from tests.fuzz.values import AWKWARD_SCALARS, JSON_VALUES

QUYNHON_TEXT = (ROOT / "config" / "quynhon.yaml").read_text(encoding="utf-8")
QUYNHON: dict[str, Any] = yaml.safe_load(QUYNHON_TEXT)
SPLICE = "__splice_marker__"

#: Scalars that have broken config loaders: directories and over-long names as time zones, NULs in
#: paths, unset variables, numbers YAML reads as int() beyond its digit limit.
NASTY = st.one_of(
    AWKWARD_SCALARS,
    st.sampled_from(["America", "Europe/", "Etc", "posixrules", "Asia/Ho_Chi_Minh\x00", "a/\x00b", "${X}"]),
    st.sampled_from(sorted({"UTC", "Asia/Ho_Chi_Minh", "Europe/London"})),
)
#: YAML text that no Python value dumps to: deeper than the recursion limit, longer than int() reads.
RAW_YAML = st.one_of(
    st.integers(min_value=1, max_value=1200).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=1200).map(lambda n: "{a: " * n + "0" + "}" * n),
    st.integers(min_value=4000, max_value=10_000).map(lambda n: "9" * n),
    st.sampled_from(["&a [*a]", "!!python/object:os.system x", "*undefined", "!!binary ===", "? [a]\n"]),
)
#: Problems of the document as a whole, which have no path.
DOCUMENT_LEVEL = ("not valid YAML", "nested too deeply")
keys = st.from_regex(r"\A[a-z_][a-z0-9_]{0,11}\Z", fullmatch=True)


def outcome(text: str, source: str = "<fuzz>") -> SiteConfig | ConfigError:
    """The config, or the ``ConfigError``; any other exception fails the test."""
    try:
        return parse_site(text, source, env={})
    except ConfigError as exc:
        error = exc
    assert error.issues, "a ConfigError lists at least one issue"
    assert str(error).startswith(f"{source}: ")
    for issue in error.issues:
        assert issue.message, issue
        assert issue.line is None or 1 <= issue.line <= text.count("\n") + 1, issue
    return error


def assert_issues_are_located(exc: ConfigError, root: dict[str, Any], text: str) -> None:
    """For a document whose root is a mapping, every issue names a path anchored in it and a line."""
    fields = set(SiteConfig.model_fields)
    for issue in exc.issues:
        if not issue.path and issue.message.startswith(DOCUMENT_LEVEL):
            continue  # a splice may break the whole document: its syntax, its depth, an alias cycle
        assert issue.path, f"issue without a path: {issue}"
        first = re.split(r"[.\[]", issue.path, maxsplit=1)[0]
        assert first in fields or first in root, f"path not in the document or schema: {issue}"
        assert issue.line is not None, f"issue without a line: {issue}"
        assert issue.path in str(exc)


# --------------------------------------------------------------------------------------------------
# Arbitrary documents


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.text(alphabet="[]{}:-,?&*!|>#'\" \n\tab01.", max_size=80))
@example("[" * 3000)
@example("a: " + "9" * 5000)
def test_arbitrary_text(text: str) -> None:
    outcome(text)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES | st.dictionaries(st.sampled_from(["site", "cameras", "mqtt_prefix", "x"]), JSON_VALUES))
def test_arbitrary_yaml_documents(value: Any) -> None:
    outcome(yaml.safe_dump(value, allow_unicode=True))


# --------------------------------------------------------------------------------------------------
# Mutations of the shipped site


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: dict[str, Any], data: st.DataObject) -> None:
    """One random change at one random place below the root, in place."""
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    op = data.draw(st.sampled_from(["drop", "replace", "nest", "splice", "add", "duplicate"]), label="op")
    if op == "drop":
        del parent[key]
    elif op == "replace":
        parent[key] = data.draw(NASTY | JSON_VALUES, label="value")
    elif op == "nest":
        parent[key] = [parent[key]]
    elif op == "splice":
        parent[key] = SPLICE
    elif op == "add" and isinstance(parent, dict):
        parent[data.draw(keys, label="new key")] = data.draw(NASTY, label="value")
    elif op == "duplicate" and isinstance(parent, list) and isinstance(key, int):
        parent.append(copy.deepcopy(parent[key]))  # duplicate ids, duplicate points


# Each example parses the whole shipped site with pure-Python YAML (~0.1 s): fewer, bigger examples.
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_shipped_site(data: st.DataObject) -> None:
    doc = copy.deepcopy(QUYNHON)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        _mutate(doc, data)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    while SPLICE in text:
        text = text.replace(SPLICE, data.draw(RAW_YAML, label="raw"), 1)
    result = outcome(text)
    if isinstance(result, ConfigError):
        assert_issues_are_located(result, doc, text)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(
        [("site", "timezone"), ("cameras", 0, "source", "path"), ("cameras", 1, "detector", "model")]
    ),
    NASTY | st.text(max_size=300),
)
@example(("site", "timezone"), "America")
@example(("site", "timezone"), "A" * 300)
@example(("cameras", 0, "source", "path"), "clip\x00.mp4")
@example(("cameras", 1, "detector", "model"), "models/\x00x")
def test_awkward_strings_where_the_loader_touches_the_file_system(
    where: tuple[str | int, ...], value: Any
) -> None:
    """Time zones are looked up on disk and video/model paths resolved: both must fail as config errors."""
    doc = copy.deepcopy(QUYNHON)
    parent: Any = doc
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = value
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "site.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_site(path, env={})
        except ConfigError as exc:
            error: ConfigError | None = exc
        else:
            error = None
    if error is not None:
        assert str(error).startswith(f"{path}: ")
        assert_issues_are_located(error, doc, text)
