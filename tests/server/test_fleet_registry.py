"""The fleet registry in a real PostgreSQL: site file import/export round trips, camera edits validated
like `citywatch config check`, every change audited and versioned per group."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from citywatch.site import load_site, parse_site
from server.db.migrate import migrate
from server.fleet import registry
from tests.conftest import ROOT

RICH = """
site: {id: rt, name: "Round trip", timezone: Asia/Ho_Chi_Minh, center: {lat: 13.77, lon: 109.22}, zoom: 15,
       bin_seconds: 30}
mqtt_prefix: cwrt
cameras:
  - id: cam-1
    name: "Ngã 5 Đống Đa"
    location: {lat: 13.771, lon: 109.223}
    heading: 270.5
    group: north
    source: {kind: stream, url: "rtsp://10.0.0.5/stream1"}
    detector: {model: yolo11s.pt, imgsz: 960, conf: 0.15, classes: [car, motorcycle], max_fps: 8}
    analysis: {motion: {enabled: false}}
    lines:
      - {id: l1, name: Entry, points: [[0.1, 0.5], [0.5, 0.55], [0.9, 0.5]],
         directions: {positive: inbound, negative: outbound}, classes: [car], min_travel: 0.05}
      - {id: l2, points: [[0.2, 0.2], [0.8, 0.2]]}
    zones:
      - {id: z1, kind: no_stopping, polygon: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]}
    rules:
      - {id: r1, type: wrong_way, line: l1, expected: inbound, severity: critical}
      - {id: r2, type: stopped_vehicle, zone: z1, min_seconds: 12.5}
    junctions:
      - {id: j1, entries: [l1], exits: [l1, l2]}
    calibration:
      image: [[0.1, 0.9], [0.9, 0.9], [0.7, 0.4], [0.3, 0.4]]
      world: [{lat: 13.7700, lon: 109.2200}, {lat: 13.7700, lon: 109.2210},
              {lat: 13.7710, lon: 109.2210}, {lat: 13.7710, lon: 109.2200}]
  - id: cam-2
    name: Two
    location: {lat: 13.78, lon: 109.21}
    source: {kind: file, path: /videos/a.mp4, loop: true}
alerting:
  sla: {acknowledge_s: 120, resolve_s: 1800}
  channels:
    bus: {kind: mqtt, prefix: cwrt}
  rules:
    - {id: a1, types: [wrong_way], min_severity: warning, groups: [north], channels: [live, bus]}
"""


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def dsn(fresh_db: str) -> str:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, "UTC", "off")
    return fresh_db


async def _with_conn(dsn: str, fn: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await fn(conn)


def test_rich_site_round_trips_without_loss(dsn: str) -> None:
    try:
        original = parse_site(RICH, env={})
    except Exception as exc:  # the fixture itself must be valid
        pytest.fail(str(exc))
    _run(_with_conn(dsn, lambda c: registry.import_site(c, original, "tester")))
    exported = _run(_with_conn(dsn, registry.export_site))
    assert exported == original
    text = registry.to_yaml(exported)
    again = parse_site(text, env={})
    assert again == original
    # Exporting, importing the export and exporting again gives the same file.
    _run(_with_conn(dsn, lambda c: registry.import_site(c, again, "tester")))
    assert registry.to_yaml(_run(_with_conn(dsn, registry.export_site))) == text


def test_demo_site_file_round_trips(dsn: str) -> None:
    original = load_site(ROOT / "config" / "quynhon.yaml", env={})
    _run(_with_conn(dsn, lambda c: registry.import_site(c, original, "tester")))
    exported = _run(_with_conn(dsn, registry.export_site))
    assert exported == original
    assert parse_site(registry.to_yaml(exported), env={}) == original


def test_camera_edit_is_validated_versioned_and_audited(dsn: str) -> None:
    site = parse_site(RICH, env={})
    _run(_with_conn(dsn, lambda c: registry.import_site(c, site, "tester")))

    async def versions(conn: Any) -> dict[str, int]:
        cur = await conn.execute("SELECT camera_group, config_version FROM fleet_groups")
        return {str(g): int(v) for g, v in await cur.fetchall()}

    before = _run(_with_conn(dsn, versions))
    bad = {
        "id": "cam-3",
        "name": "Three",
        "location": {"lat": 1, "lon": 1},
        "group": "north",
        "source": {"kind": "webcam", "index": 0},
        "lines": [{"id": "x", "points": [[0.1, 0.1], [1.5, 0.2]]}],
        "rules": [{"id": "w", "type": "wrong_way", "line": "nope", "expected": "up"}],
    }
    with pytest.raises(registry.CameraRejectedError) as info:
        _run(_with_conn(dsn, lambda c: registry.put_camera(c, bad, "admin1")))
    assert {i.field for i in info.value.issues} == {"lines[0].points[1][0]"}
    # Cross references are checked once the fields themselves are valid, as `config check` does.
    bad["lines"] = [{"id": "x", "points": [[0.1, 0.1], [0.9, 0.2]]}]
    with pytest.raises(registry.CameraRejectedError) as info:
        _run(_with_conn(dsn, lambda c: registry.put_camera(c, bad, "admin1")))
    assert [(i.field, i.message) for i in info.value.issues] == [
        ("rules[0].line", "unknown line 'nope' (lines: ['x'])")
    ]
    assert _run(_with_conn(dsn, versions)) == before  # nothing stored, nothing bumped

    good = {**bad, "lines": [{"id": "x", "points": [[0.1, 0.1], [0.9, 0.2]]}], "rules": []}
    cfg, created = _run(_with_conn(dsn, lambda c: registry.put_camera(c, good, "admin1")))
    assert created and cfg.camera("cam-3").lines[0].id == "x"
    after = _run(_with_conn(dsn, versions))
    assert after["north"] == before["north"] + 1 and after["default"] == before["default"]
    configs = _run(_with_conn(dsn, lambda c: registry.desired_configs(c, {"north"})))
    assert [c["id"] for c in configs[0].cameras] == ["cam-1", "cam-3"]
    assert configs[0].version == after["north"]

    assert _run(_with_conn(dsn, lambda c: registry.delete_camera(c, "cam-3", "admin1"))) == "north"

    async def audited(conn: Any) -> list[tuple[str, str, str]]:
        cur = await conn.execute(
            "SELECT actor, action, target_id FROM audit_log WHERE target_type = 'camera' ORDER BY id"
        )
        return [(str(a), str(b), str(c)) for a, b, c in await cur.fetchall()]

    assert _run(_with_conn(dsn, audited))[-2:] == [
        ("admin1", "camera_add", "cam-3"),
        ("admin1", "camera_remove", "cam-3"),
    ]


def test_restart_keeps_web_changes_until_the_site_file_changes(dsn: str, tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import Settings
    from tests.server.helpers import login

    settings = Settings.from_env({"DATABASE_URL": dsn, "CITYWATCH_JWT_SECRET": "s" * 40})
    site = parse_site(RICH, env={})
    added = {"name": "Web", "location": {"lat": 1, "lon": 1}, "source": {"kind": "webcam", "index": 1}}
    with TestClient(create_app(settings, site, ingest=False)) as client:
        login(client, dsn, "admin")
        assert client.put("/api/v1/fleet/cameras/cam-web", json=added).status_code == 200
    with TestClient(create_app(settings, site, ingest=False)) as client:  # same file: the registry stays
        login(client, dsn, "admin")
        ids = [c["id"] for c in client.get("/api/v1/fleet").json()["cameras"]]
        assert ids == ["cam-1", "cam-2", "cam-web"]
        assert "cam-web" in client.get("/api/v1/fleet/site.yaml").text
    changed = parse_site(RICH.replace('name: "Round trip"', 'name: "Renamed"'), env={})
    with TestClient(create_app(settings, changed, ingest=False)) as client:  # a changed file wins
        login(client, dsn, "admin")
        ids = [c["id"] for c in client.get("/api/v1/fleet").json()["cameras"]]
        assert ids == ["cam-1", "cam-2"]
