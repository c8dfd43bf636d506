"""History API on plain PostgreSQL: answers equal sums computed independently from the raw data."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from contract import IncidentEvent, StreamState
from server.app import create_app
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.server.helpers import incident, login, status, write_site
from tests.server.history_data import START, TZ, expected_volume, generate, store
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE = "hist"
CAMS = ["cam-h1", "cam-h2", "cam-h3"]
MSGS = generate(SITE, CAMS)
END = START + timedelta(days=2)


@pytest.fixture(scope="module")
def client(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    site_path = write_site(tmp_path_factory.mktemp("site"), SITE, "citywatch", CAMS)
    site = load_site(site_path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone)
        writer = BatchWriter("plain", site.site.timezone)
        store(conn, writer, MSGS)
        # cam-h3 reports itself offline for the first two of its four dead hours on day 2
        day2 = START + timedelta(days=1)
        down = status(SITE, "cam-h3", 0, StreamState.OFFLINE).model_copy(
            update={"ts": day2 + timedelta(hours=10)}
        )
        up = status(SITE, "cam-h3", 0, StreamState.ONLINE).model_copy(
            update={"ts": day2 + timedelta(hours=12)}
        )
        writer.write(conn, [acc(down), acc(up)])
        for k in range(3):
            iid = uuid.uuid4()
            writer.write(
                conn,
                [
                    acc(
                        incident(
                            SITE,
                            CAMS[k % 2],
                            10_000 + k,
                            iid,
                            IncidentEvent.START,
                            START + timedelta(hours=k),
                        )
                    )
                ],
            )
    settings = Settings.from_env({"DATABASE_URL": fresh_db, "CITYWATCH_SITE": str(site_path)})
    with TestClient(create_app(settings, site, ingest=False)) as c:
        login(c, fresh_db)
        yield c


def rows_to_dict(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], int]:
    out = {}
    for r in rows:
        if r["count"]:
            key = (
                r["camera_id"],
                datetime.fromisoformat(r["bucket"]),
                r["line_id"],
                r["direction"],
                r["cls"],
            )
            out[key] = r["count"]
    return out


@pytest.mark.parametrize("source", ["rollup", "raw"])
@pytest.mark.parametrize("g", ["15m", "1h", "1d"])
def test_volume_matches_independent_sums(client: TestClient, g: str, source: str) -> None:
    r = client.get(
        "/api/v1/history/volume",
        params={"start": START.isoformat(), "end": END.isoformat(), "bin": g, "source": source},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert rows_to_dict(body["rows"]) == expected_volume(MSGS, g)  # type: ignore[arg-type]
    # times go out in the site's zone
    assert body["rows"][0]["bucket"].endswith("+07:00")


def test_group_by_class_only(client: TestClient) -> None:
    r = client.get(
        "/api/v1/history/volume",
        params={
            "start": START.isoformat(),
            "end": END.isoformat(),
            "bin": "1d",
            "group_by": "cls",
            "camera_id": "cam-h1",
        },
    )
    got = rows_to_dict(r.json()["rows"])
    want = {k: v for k, v in expected_volume(MSGS, "1d", ["cls"]).items() if k[0] == "cam-h1"}
    assert got == want and len(got) == 4  # 2 days x 2 classes


@pytest.mark.parametrize("source", ["rollup", "raw"])
@pytest.mark.parametrize("g", ["15m", "1h", "1d"])
def test_camera_totals(client: TestClient, g: str, source: str) -> None:
    params = {
        "start": START.isoformat(),
        "end": END.isoformat(),
        "bin": g,
        "source": source,
        "group_by": "camera",
    }
    got = rows_to_dict(client.get("/api/v1/history/volume", params=params).json()["rows"])
    assert got == expected_volume(MSGS, g, [])  # type: ignore[arg-type]
    assert len(got) > 0


def test_quality_tells_dead_camera_from_quiet_street(client: TestClient) -> None:
    r = client.get(
        "/api/v1/history/volume", params={"start": START.isoformat(), "end": END.isoformat(), "bin": "1h"}
    )
    quality: dict[tuple[str, int, int], str] = {}
    for row in r.json()["rows"]:
        t = datetime.fromisoformat(row["bucket"])
        quality[(row["camera_id"], t.day, t.hour)] = row["quality"]
    day2 = START.day + 1
    assert quality[("cam-h3", day2, 11)] == "offline"  # its status said so
    assert quality[("cam-h3", day2, 13)] == "no_data"  # nothing known
    assert quality[("cam-h3", day2, 9)] == "ok"
    assert quality[("cam-h2", START.day, 8)] == "degraded"  # low fps
    assert quality[("cam-h1", START.day, 8)] == "ok"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_downloads_carry_the_same_rows(client: TestClient, fmt: str) -> None:
    params = {"start": START.isoformat(), "end": END.isoformat(), "bin": "1d", "format": fmt}
    r = client.get("/api/v1/history/volume", params=params)
    assert r.status_code == 200
    if fmt == "csv":
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
    else:
        rows = pq.read_table(io.BytesIO(r.content)).to_pylist()
    total = sum(int(x["count"]) for x in rows)
    assert total == sum(expected_volume(MSGS, "1d").values())


def test_peak_hours(client: TestClient) -> None:
    r = client.get(
        "/api/v1/history/peak-hours", params={"start": START.isoformat(), "end": END.isoformat(), "top": 1}
    )
    hours: dict[datetime, int] = defaultdict(int)
    for (_, b, *_rest), v in expected_volume(MSGS, "1h").items():
        hours[b] += v
    best = max(hours.items(), key=lambda kv: (kv[1], -kv[0].timestamp()))
    assert r.json()["peaks"] == [{"hour_start": best[0].astimezone(TZ).isoformat(), "count": best[1]}]
    assert len(r.json()["by_hour_of_day"]) == 24


def test_compare_two_days(client: TestClient) -> None:
    day1, day2 = START, START + timedelta(days=1)
    r = client.get(
        "/api/v1/history/compare",
        params={
            "a_start": day1.isoformat(),
            "a_end": day2.isoformat(),
            "b_start": day2.isoformat(),
            "b_end": END.isoformat(),
        },
    )
    a = sum(v for (_, b, *_), v in expected_volume(MSGS, "1d").items() if b == day1)
    b = sum(v for (_, bb, *_), v in expected_volume(MSGS, "1d").items() if bb == day2)
    assert r.json()["total"]["a"] == a and r.json()["total"]["b"] == b


def test_incident_counts_by_type_and_place(client: TestClient) -> None:
    r = client.get("/api/v1/history/incidents", params={"start": START.isoformat(), "end": END.isoformat()})
    got = {(x["camera_id"], x["type"]): x["count"] for x in r.json()["rows"]}
    assert got == {("cam-h1", "wrong_way"): 2, ("cam-h2", "wrong_way"): 1}


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/api/v1/history/volume", {"start": END.isoformat(), "end": START.isoformat()}, 422),
        (
            "/api/v1/history/volume",
            {"start": START.isoformat(), "end": END.isoformat(), "camera_id": "nope"},
            404,
        ),
        ("/api/v1/history/volume", {"start": START.isoformat(), "end": END.isoformat(), "bin": "7m"}, 422),
        ("/api/v1/history/turning-movements", {}, 422),
        ("/docs", {}, 200),
        ("/openapi.json", {}, 200),
        ("/healthz", {}, 200),
    ],
)
def test_status_codes(client: TestClient, path: str, params: dict[str, str], code: int) -> None:
    assert client.get(path, params=params).status_code == code
