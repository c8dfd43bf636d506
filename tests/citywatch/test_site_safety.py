"""Road-safety rules in the site config: on by default with their defaults, replaced by a configured
rule of the same type, off with `road_safety: false`, and their zone references checked."""

from __future__ import annotations

import pytest

from citywatch.site import ConfigError, parse_site
from citywatch.site_safety import SAFETY_TYPES, CollisionRule
from tests.citywatch.test_site import GOOD

R2 = "      - {id: r2, type: wrong_way, line: L1, expected: north}\n"


def test_every_camera_runs_the_road_safety_rules_by_default() -> None:
    cam = parse_site(GOOD, env={}).camera("c1")
    rules = cam.effective_rules()
    assert [r.type for r in rules][:2] == ["intrusion", "wrong_way"]
    assert sorted(r.type for r in rules[2:]) == sorted(SAFETY_TYPES)
    assert all(r.severity.value == "critical" for r in rules[2:])


def test_a_configured_rule_replaces_the_default_and_off_means_off() -> None:
    text = GOOD.replace(
        R2,
        R2 + "      - {id: crash, type: collision, min_speed: 2.5, severity: warning, signal_zones: [q]}\n",
    ).replace(
        "    zones:\n",
        "    zones:\n      - {id: q, kind: signal_queue, polygon: [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]]}\n",
    )
    cam = parse_site(text, env={}).camera("c1")
    collisions = [r for r in cam.effective_rules() if r.type == "collision"]
    assert len(collisions) == 1 and isinstance(collisions[0], CollisionRule)
    assert collisions[0].min_speed == 2.5 and collisions[0].signal_zones == ["q"]
    off = parse_site(GOOD.replace("    name: C1\n", "    name: C1\n    road_safety: false\n"), env={})
    assert [r.type for r in off.camera("c1").effective_rules()] == ["intrusion", "wrong_way"]


@pytest.mark.parametrize(
    ("rule", "path", "words"),
    [
        pytest.param(
            "{id: c, type: collision, signal_zones: [nope]}",
            "rules[2].signal_zones[0]",
            "unknown zone",
            id="zone",
        ),
        pytest.param(
            "{id: c, type: person_down, max_aspect: -1}", "rules[2].max_aspect", "greater than 0", id="range"
        ),
        pytest.param(
            "{id: c, type: road_blocked, colour: red}", "rules[2].colour", "Extra inputs", id="extra"
        ),
    ],
)
def test_bad_safety_rule_names_the_path(rule: str, path: str, words: str) -> None:
    text = GOOD.replace(
        R2,
        f"{R2}      - {rule}\n",
    )
    with pytest.raises(ConfigError) as err:
        parse_site(text, env={})
    assert any(i.path == f"cameras[0].{path}" and words in i.message for i in err.value.issues), err.value
