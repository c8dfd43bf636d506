"""The site config: the shipped demo site is valid; each kind of bad input is named by its path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from citywatch.cli import main
from citywatch.site import ConfigError, FileSource, load_site, parse_site
from tests.conftest import ROOT

GOOD = textwrap.dedent(
    """\
    site: {id: s1, name: Site, timezone: Asia/Ho_Chi_Minh, center: {lat: 13.77, lon: 109.22}}
    cameras:
      - id: c1
        name: C1
        location: {lat: 13.77, lon: 109.22}
        source: {kind: file, path: clip.mp4}
        lines:
          - {id: L1, points: [[0.0, 0.5], [1.0, 0.5]], directions: {positive: south, negative: north}}
        zones:
          - {id: z1, kind: restricted, polygon: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]}
        rules:
          - {id: r1, type: intrusion, zone: z1}
          - {id: r2, type: wrong_way, line: L1, expected: north}
    """
)


def test_shipped_demo_site_is_valid() -> None:
    cfg = load_site(ROOT / "config" / "quynhon.yaml", env={})
    assert cfg.site.id == "quynhon"
    assert cfg.site.timezone == "Asia/Ho_Chi_Minh"
    assert len(cfg.cameras) >= 4
    for cam in cfg.cameras:
        # Quy Nhơn lies around 13.7N 109.2E.
        assert 13.6 < cam.location.lat < 13.9 and 109.1 < cam.location.lon < 109.3, cam.id
        assert isinstance(cam.source, FileSource)
        assert Path(cam.source.path).is_absolute() and "shared/videos" in cam.source.path


def test_video_folder_comes_from_the_environment(tmp_path: Path) -> None:
    cfg = load_site(ROOT / "config" / "quynhon.yaml", env={"CITYWATCH_VIDEO_DIR": str(tmp_path)})
    src = cfg.cameras[0].source
    assert isinstance(src, FileSource) and src.path.startswith(str(tmp_path))


def test_good_config_parses() -> None:
    cfg = parse_site(GOOD, env={})
    assert cfg.camera("c1").line("L1").directions.negative == "north"


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_site(text, env={})
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        pytest.param(
            "lat: 13.77, lon: 109.22}}",
            "lat: 200, lon: 109.22}}",
            "site.center.lat",
            "less than or equal to 90",
            id="latitude-200",
        ),
        pytest.param(
            "name: C1", "name: C1\n    colour: red", "cameras[0].colour", "Extra inputs", id="unknown-key"
        ),
        pytest.param(
            "[[0.0, 0.5], [1.0, 0.5]]",
            "[[0.0, 0.5]]",
            "cameras[0].lines[0].points",
            "at least 2",
            id="line-one-point",
        ),
        pytest.param(
            "[[0.0, 0.5], [1.0, 0.5]]",
            "[[0.0, 0.5], [1.3, 0.5]]",
            "cameras[0].lines[0].points[1][0]",
            "less than or equal to 1",
            id="outside-0-1",
        ),
        pytest.param(
            "[[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]",
            "[[0.1, 0.1], [0.4, 0.4], [0.4, 0.1], [0.1, 0.4]]",
            "cameras[0].zones[0].polygon",
            "intersects itself",
            id="bow-tie-polygon",
        ),
        pytest.param(
            "location: {lat: 13.77,",
            "location: {lat: north,",
            "cameras[0].location.lat",
            "valid number",
            id="wrong-type",
        ),
        pytest.param(
            "zone: z1}", "zone: nowhere}", "cameras[0].rules[0].zone", "unknown zone", id="unknown-zone"
        ),
        pytest.param(
            "expected: north}",
            "expected: east}",
            "cameras[0].rules[1].expected",
            "not a direction",
            id="bad-direction",
        ),
        pytest.param(
            "timezone: Asia/Ho_Chi_Minh",
            "timezone: Mars/Olympus",
            "site.timezone",
            "unknown time zone",
            id="bad-timezone",
        ),
        pytest.param(
            "{kind: file, path: clip.mp4}",
            "{kind: rtsp, url: x}",
            "cameras[0].source",
            "tag",
            id="bad-source-kind",
        ),
        pytest.param(
            "{kind: file, path: clip.mp4}",
            "{kind: stream, url: 'ftp://x'}",
            "cameras[0].source.url",
            "rtsp",
            id="bad-stream-url",
        ),
    ],
)
def test_bad_config_names_the_path(old: str, new: str, path: str, words: str) -> None:
    assert old in GOOD
    errors = _errors(GOOD.replace(old, new, 1))
    assert any(e.startswith(path) and words in e for e in errors), errors


def test_duplicate_camera_ids_are_rejected() -> None:
    cam = GOOD[GOOD.index("  - id: c1") :]
    errors = _errors(GOOD + cam.replace("name: C1", "name: C2"))
    assert any(e.startswith("cameras[1].id") and "duplicate camera id 'c1'" in e for e in errors), errors


def test_every_error_is_reported_with_its_line() -> None:
    text = GOOD.replace("lon: 109.22}}", "lon: 500}}")
    text = text.replace("[[0.0, 0.5], [1.0, 0.5]]", "[[0.0, 0.5]]")
    with pytest.raises(ConfigError) as info:
        parse_site(text, env={})
    paths = {i.path for i in info.value.issues}
    assert {"site.center.lon", "cameras[0].lines[0].points"} <= paths
    line = next(i.line for i in info.value.issues if i.path == "site.center.lon")
    assert line == 1


def test_missing_env_var_without_default() -> None:
    errors = _errors(GOOD.replace("path: clip.mp4", "path: '${NOPE_NOT_SET}/clip.mp4'"))
    assert any("NOPE_NOT_SET" in e and e.startswith("cameras[0].source.path") for e in errors), errors


def test_not_yaml() -> None:
    errors = _errors("site: [unclosed\n")
    assert any("not valid YAML" in e for e in errors)


def test_cli_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(ROOT / "config" / "quynhon.yaml")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("[[0.0, 0.5], [1.0, 0.5]]", "[[0.0, 0.5]]"), encoding="utf-8")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "cameras[0].lines[0].points (line 8)" in err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 1


JUNCTION = GOOD.replace(
    "    zones:\n",
    "      - {id: L2, points: [[0.5, 0.0], [0.5, 1.0]], directions: {positive: east, negative: west}}\n"
    "    junctions:\n"
    "      - {id: j1, name: Main x Side, entries: [L1, L2], exits: [L1, L2]}\n"
    "    zones:\n",
    1,
)


def test_junction_parses_with_a_two_way_approach() -> None:
    cam = parse_site(JUNCTION, env={}).camera("c1")
    assert [(j.id, j.entries, j.exits) for j in cam.junctions] == [("j1", ["L1", "L2"], ["L1", "L2"])]
    assert parse_site(GOOD, env={}).camera("c1").junctions == []  # optional


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        pytest.param(
            "entries: [L1, L2]",
            "entries: [L1, L9]",
            "cameras[0].junctions[0].entries[1]",
            "unknown line 'L9'",
            id="unknown-entry-line",
        ),
        pytest.param(
            "exits: [L1, L2]",
            "exits: [nowhere]",
            "cameras[0].junctions[0].exits[0]",
            "unknown line 'nowhere'",
            id="unknown-exit-line",
        ),
        pytest.param(
            "exits: [L1, L2]", "exits: []", "cameras[0].junctions[0].exits", "at least 1", id="no-exit"
        ),
        pytest.param(
            "entries: [L1, L2]", "entries: []", "cameras[0].junctions[0].entries", "at least 1", id="no-entry"
        ),
        pytest.param(
            "entries: [L1, L2]",
            "entries: [L2, L2]",
            "cameras[0].junctions[0].entries[1]",
            "listed twice",
            id="entry-twice",
        ),
        pytest.param(
            "exits: [L1, L2]}",
            "exits: [L1, L2]}\n      - {id: j1, entries: [L1], exits: [L2]}",
            "cameras[0].junctions[1].id",
            "duplicate id 'j1'",
            id="duplicate-junction",
        ),
        pytest.param(
            "name: Main x Side,",
            "colour: red,",
            "cameras[0].junctions[0].colour",
            "Extra inputs",
            id="unknown-junction-key",
        ),
    ],
)
def test_bad_junction_names_the_path(old: str, new: str, path: str, words: str) -> None:
    assert old in JUNCTION
    errors = _errors(JUNCTION.replace(old, new, 1))
    assert any(e.startswith(path) and words in e for e in errors), errors


@pytest.mark.parametrize(
    ("alerting", "path", "words"),
    [
        ("  rules: [{id: a1, channels: [pager]}]", "alerting", "unknown channel(s): pager"),
        (
            "  rules: [{id: a1, channels: [live], groups: [harbour]}]",
            "alerting.rules[0].groups[0]",
            "unknown group",
        ),
        (
            "  rules: [{id: a1, channels: [live], cameras: [c9]}]",
            "alerting.rules[0].cameras[0]",
            "unknown camera",
        ),
        (
            "  channels: {hook: {kind: webhook, url: 'http://x/y', secret: short}}",
            "alerting.channels.hook.secret",
            "at least 16",
        ),
        ("  rules: [{id: a1, channels: [live], typo: 1}]", "alerting.rules[0].typo", "Extra inputs"),
    ],
    ids=["unknown-channel", "unknown-group", "unknown-camera", "short-secret", "unknown-key"],
)
def test_bad_alerting_section_names_the_path(alerting: str, path: str, words: str) -> None:
    errors = _errors(GOOD + "alerting:\n" + alerting + "\n")
    assert any(e.startswith(path) and words in e for e in errors), errors


def test_alerting_secret_from_the_environment() -> None:
    text = (
        GOOD + "alerting:\n  channels: {hook: {kind: webhook, url: 'https://d/x', secret: '${HOOK_KEY}'}}\n"
    )
    cfg = parse_site(text, env={"HOOK_KEY": "k" * 32})
    hook = cfg.alerting.channels["hook"]
    assert hook.kind == "webhook" and hook.secret.get_secret_value() == "k" * 32
    assert "k" * 32 not in repr(cfg)  # secrets never show in logs or reprs
