"""The public open-data API over generated counts with rare classes: no login, NGSI-LD entities valid
against the shared schemas, no cell below k in any answer, the delay, caching headers, pagination."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from citywatch.site import load_site
from server.app import create_app
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.opendata.ngsi import to_key_values
from server.settings import Settings
from tests.server.history_data import store
from tests.server.opendata import schemas
from tests.server.opendata.data import TZ, expected, generate, site_file, start_of_data

pytestmark = pytest.mark.integration
SITE, CAMS, K = "odapi", ["cam-o1", "cam-o2", "cam-o3"], 5
NOW = datetime.now(UTC)
MSGS = generate(SITE, CAMS, NOW)
OPEN_DATA = f"open_data: {{k: {K}, delay_s: 3600}}\n"


@pytest.fixture(scope="module")
def db(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    site = load_site(site_file(tmp_path_factory.mktemp("s"), SITE, CAMS, OPEN_DATA))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone, "off")
        store(conn, BatchWriter("plain", site.site.timezone), MSGS, chunk=300)
        # the first local day of cam-o1 is sample data
        day0 = start_of_data(NOW)
        conn.execute(
            "UPDATE count_bins SET sample = true WHERE camera_id = 'cam-o1' AND bin_start >= %s "
            "AND bin_start < %s",
            (day0, day0 + timedelta(days=1)),
        )
    return fresh_db


def _client(db: str, folder: Any, open_data: str) -> TestClient:
    path = site_file(folder, SITE, CAMS, open_data)
    settings = Settings.from_env({"DATABASE_URL": db, "CITYWATCH_SITE": str(path)})
    return TestClient(create_app(settings, load_site(path), ingest=False))


@pytest.fixture(scope="module")
def client(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with _client(db, tmp_path_factory.mktemp("c"), OPEN_DATA) as c:
        yield c  # never logged in


def _days() -> list[str]:
    d0 = start_of_data(NOW).date()
    return [(d0 + timedelta(days=i)).isoformat() for i in range(3)]


def _all_entities(client: TestClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url: str | None = "/open/v1/flow"
    query: dict[str, Any] | None = params
    while url:
        r = client.get(url, params=query)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/ld+json")
        out.extend(r.json())
        nxt = r.links.get("next")
        url, query = (nxt["url"], None) if nxt else (None, None)
    return out


@pytest.mark.parametrize("options", ["normalized", "keyValues"])
@pytest.mark.parametrize("bin_", ["1h", "1d"])
def test_entities_validate_against_the_shared_schema(client: TestClient, bin_: str, options: str) -> None:
    ok, why = schemas.models_present()
    if not ok:
        pytest.skip(why)
    n = 0
    for day in _days()[:2]:
        for e in _all_entities(client, {"bin": bin_, "date": day, "options": options, "limit": 2000}):
            kv = to_key_values(e) if options == "normalized" else e
            if options == "normalized":
                assert e["intensity"]["type"] == "Property"
                assert e["location"]["type"] == "GeoProperty"
            assert schemas.errors(kv) == [], kv
            n += 1
    assert n > 50


def test_an_invalid_entity_is_caught() -> None:
    """The validator is not a rubber stamp."""
    ok, why = schemas.models_present()
    if not ok:
        pytest.skip(why)
    bad = {"id": "urn:x", "type": "TrafficFlowObserved", "dateObserved": "x", "vehicleType": "person"}
    assert schemas.errors(bad)


def _counts_in(client: TestClient, bin_: str, day: str, fmt: str) -> list[int]:
    if fmt in {"normalized", "keyValues"}:
        ents = _all_entities(client, {"bin": bin_, "date": day, "options": fmt, "limit": 5000})
        return [e["intensity"]["value"] if fmt == "normalized" else e["intensity"] for e in ents]
    r = client.get("/open/v1/flow", params={"bin": bin_, "date": day, "format": fmt})
    assert r.status_code == 200, r.text
    if fmt == "csv":
        return [int(row["count"]) for row in csv.DictReader(io.StringIO(r.text))]
    return [int(v) for v in pq.read_table(io.BytesIO(r.content)).column("count").to_pylist()]


@pytest.mark.parametrize("fmt", ["normalized", "keyValues", "csv", "parquet"])
@pytest.mark.parametrize("bin_", ["1h", "1d"])
def test_no_cell_below_k_in_any_answer(client: TestClient, bin_: str, fmt: str) -> None:
    truth = expected(MSGS, bin_)  # type: ignore[arg-type]
    assert any(0 < v < K for v in truth.values()), "the data must hold small cells to suppress"
    seen = 0
    for day in _days():
        values = _counts_in(client, bin_, day, fmt)
        assert all(v >= K for v in values), sorted(values)[:5]
        seen += len(values)
    assert seen > 0


def test_published_cells_equal_the_sums_and_small_ones_are_counted(client: TestClient) -> None:
    day = _days()[1]
    r = client.get("/open/v1/flow", params={"bin": "1h", "date": day, "format": "csv"})
    got = {
        (row["camera_id"], datetime.fromisoformat(row["bucket_start"]), row["line_id"], row["direction"],
         row["class"]): int(row["count"])
        for row in csv.DictReader(io.StringIO(r.text))
    }  # fmt: skip
    lo = datetime.fromisoformat(day).replace(tzinfo=TZ)
    want = {k: v for k, v in expected(MSGS, "1h").items() if lo <= k[1] < lo + timedelta(days=1)}
    assert got == {k: v for k, v in want.items() if v >= K}
    assert int(r.headers["X-Suppressed-Cells"]) == sum(1 for v in want.values() if v < K) > 0


def test_nothing_newer_than_the_delay(client: TestClient) -> None:
    today = _days()[2]
    r = client.get("/open/v1/flow", params={"bin": "1h", "date": today, "format": "csv"})
    ends = [datetime.fromisoformat(row["bucket_end"]) for row in csv.DictReader(io.StringIO(r.text))]
    limit = datetime.now(UTC) - timedelta(hours=1)
    assert all(e <= limit for e in ends)
    # today's daily bucket has not ended: not published
    assert _counts_in(client, "1d", today, "csv") == []


def test_sample_data_is_flagged(client: TestClient) -> None:
    ents = _all_entities(client, {"bin": "1d", "date": _days()[0], "options": "keyValues"})
    flags = {(e["cameraId"], e["sample"]) for e in ents}
    assert ("cam-o1", True) in flags
    assert ("cam-o2", False) in flags
    assert ("cam-o1", False) not in flags


def test_etag_and_last_modified_give_304(client: TestClient) -> None:
    params = {"bin": "1d", "date": _days()[1]}
    r = client.get("/open/v1/flow", params=params)
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert client.get("/open/v1/flow", params=params, headers={"If-None-Match": etag}).status_code == 304
    r2 = client.get("/open/v1/flow", params=params, headers={"If-Modified-Since": modified})
    assert r2.status_code == 304
    other = client.get("/open/v1/flow", params=params, headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert other.content == r.content


def test_pagination_walks_every_entity_once(client: TestClient) -> None:
    params = {"bin": "1h", "date": _days()[1], "options": "keyValues"}
    whole = client.get("/open/v1/flow", params={**params, "limit": 5000}).json()
    paged = _all_entities(client, {**params, "limit": 37})
    assert len(whole) > 37
    assert [e["id"] for e in paged] == [e["id"] for e in whole]
    assert len({e["id"] for e in paged}) == len(paged)


def test_camera_locations_geojson(client: TestClient) -> None:
    r = client.get("/open/v1/cameras.geojson")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert {f["id"] for f in doc["features"]} == set(CAMS)
    assert doc["features"][0]["geometry"] == {"type": "Point", "coordinates": [109.2218, 13.7762]}


def test_incidents_are_not_published_by_default(client: TestClient) -> None:
    assert client.get("/open/v1/alerts").status_code == 404


def test_bad_requests_are_clear(client: TestClient) -> None:
    r = client.get("/open/v1/flow", params={"bin": "1h", "start": "2026-01-01T00:00:00+07:00",
                                            "end": "2026-03-01T00:00:00+07:00"})  # fmt: skip
    assert r.status_code == 422
    assert "31 days" in r.json()["detail"][0]["msg"]
    assert client.get("/open/v1/flow", params={"camera_id": "nope"}).status_code == 404


def test_rate_limit_and_site_settings(db: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    od = "open_data: {rate_per_min: 3, publish_counts: false, publish_incidents: true}\n"
    with _client(db, tmp_path_factory.mktemp("r"), od) as c:
        assert c.get("/open/v1/flow").status_code == 404  # counts switched off
        assert c.get("/open/v1/alerts").status_code == 200
        assert c.get("/open/v1/cameras.geojson").status_code == 200
        r = c.get("/open/v1/cameras.geojson")
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
