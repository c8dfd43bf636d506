"""Turning movements from counts messages to the history API, on plain PostgreSQL: the answers equal sums
computed from the messages, and a redelivered or re-sent bin adds nothing."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from contract import CountsMessage, Movement
from server.app import create_app
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.server.helpers import CAMERA_TEMPLATE, SITE_TEMPLATE, counts, login
from tests.server.history_data import START
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE = "turns"
CAMS = ["cam-j1", "cam-j2"]
JUNCTION = "    junctions:\n      - {id: j1, name: Main x Side, entries: [L1, L2], exits: [L1, L2]}\n"
END = START + timedelta(hours=1)
Key = tuple[str, str, str, str, str]


def with_movements(msg: CountsMessage, cells: list[tuple[str, str, str, str, int]]) -> CountsMessage:
    moves = [Movement(junction_id=j, from_line=f, to_line=t, cls=c, count=n) for j, f, t, c, n in cells]
    return msg.model_copy(update={"movements": moves})


FIRST = with_movements(
    counts(SITE, "cam-j1", 1, START, bin_s=300),
    [("j1", "L1", "L2", "car", 3), ("j1", "L2", "L1", "motorcycle", 2), ("j1", "L1", "L2", "motorcycle", 1)],
)
SECOND = with_movements(
    counts(SITE, "cam-j1", 2, START + timedelta(minutes=5), bin_s=300),
    # a cell repeated within one message is summed
    [("j1", "L1", "L2", "car", 4), ("j1", "L1", "L2", "car", 1), ("j1", "L2", "L2", "car", 1)],
)
OTHER_CAMERA = with_movements(
    counts(SITE, "cam-j2", 1, START + timedelta(minutes=10), bin_s=300), [("j1", "L2", "L1", "bus", 7)]
)
OUTSIDE = with_movements(counts(SITE, "cam-j1", 3, END, bin_s=300), [("j1", "L1", "L2", "car", 50)])
STORED = [FIRST, SECOND, OTHER_CAMERA]


def expected(msgs: list[CountsMessage]) -> dict[Key, int]:
    out: dict[Key, int] = defaultdict(int)
    for m in msgs:
        for mv in m.movements:
            out[(m.camera_id, mv.junction_id, mv.from_line, mv.to_line, mv.cls)] += mv.count
    return dict(out)


def from_json(body: dict[str, Any]) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for j in body["junctions"]:
        total = 0
        for frm, tos in j["matrix"].items():
            for to, by_cls in tos.items():
                for cls, n in by_cls.items():
                    out[(j["camera_id"], j["junction_id"], frm, to, cls)] = n
                    total += n
        assert j["total"] == total
    return out


@pytest.fixture(scope="module")
def setup(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    folder: Path = tmp_path_factory.mktemp("site")
    site_path = folder / "site.yaml"
    body = "".join(CAMERA_TEMPLATE.format(cam=c) + JUNCTION for c in CAMS)
    site_path.write_text(
        SITE_TEMPLATE.format(site_id=SITE, prefix="citywatch", cameras=body), encoding="utf-8"
    )
    site = load_site(site_path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone)
    settings = Settings.from_env({"DATABASE_URL": fresh_db, "CITYWATCH_SITE": str(site_path)})
    with TestClient(create_app(settings, site, ingest=False)) as c:
        login(c, fresh_db)
        yield c, fresh_db


def test_turning_movements_match_sums_and_redelivery_adds_nothing(setup: tuple[TestClient, str]) -> None:
    client, dsn = setup
    params = {"start": START.isoformat(), "end": END.isoformat()}
    writer = BatchWriter("plain", "Asia/Ho_Chi_Minh")
    with psycopg.connect(dsn, autocommit=True) as conn:
        writer.write(conn, [acc(FIRST), acc(SECOND), acc(OUTSIDE)])
        writer.write(conn, [acc(OTHER_CAMERA)])
    r = client.get("/api/v1/history/turning-movements", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    want = expected(STORED)
    assert from_json(body) == want
    assert want[("cam-j1", "j1", "L1", "L2", "car")] == 8  # 3 + 4 + 1
    assert body["timezone"] == "Asia/Ho_Chi_Minh" and body["start"].endswith("+07:00")
    assert [(j["camera_id"], j["name"], j["entries"]) for j in body["junctions"]] == [
        ("cam-j1", "Main x Side", ["L1", "L2"]),
        ("cam-j2", "Main x Side", ["L1", "L2"]),
    ]

    # Redelivered (same message id), and the same bin re-sent with a new id and other movements.
    resent = with_movements(counts(SITE, "cam-j1", 4, START, bin_s=300), [("j1", "L1", "L2", "car", 99)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = writer.write(conn, [acc(FIRST), acc(SECOND), acc(resent)])
        assert result.duplicates == 3  # two by message id, one by (camera, bin_start)
    again = client.get("/api/v1/history/turning-movements", params=params)
    assert from_json(again.json()) == want

    one = client.get("/api/v1/history/turning-movements", params={**params, "camera_id": "cam-j2"})
    assert from_json(one.json()) == expected([OTHER_CAMERA])

    download = client.get("/api/v1/history/turning-movements", params={**params, "format": "csv"})
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert {
        (r["camera_id"], r["junction_id"], r["from_line"], r["to_line"], r["cls"]): int(r["count"])
        for r in rows
    } == want


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 422),
        ({"start": END.isoformat(), "end": START.isoformat()}, 422),
        ({"start": START.isoformat(), "end": END.isoformat(), "camera_id": "nope"}, 404),
        ({"start": "2026-11-20T00:00:00", "end": "2026-11-21T00:00:00"}, 422),  # no offset
    ],
)
def test_turning_movements_status_codes(
    setup: tuple[TestClient, str], params: dict[str, str], code: int
) -> None:
    client, _ = setup
    assert client.get("/api/v1/history/turning-movements", params=params).status_code == code
