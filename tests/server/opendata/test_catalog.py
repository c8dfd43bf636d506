"""Daily dumps and the DCAT catalogue: a third party starts from /open/v1/catalog only, follows the
distribution URLs and validates what it downloads (checksums, k rule, schema)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from citywatch.site import SiteConfig, load_site
from server.app import create_app
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.opendata import dumps, jobs
from server.opendata.ngsi import to_key_values
from server.settings import Settings
from tests.server.history_data import store
from tests.server.opendata import schemas
from tests.server.opendata.data import generate, site_file, start_of_data

pytestmark = pytest.mark.integration
SITE, CAMS, K = "odcat", ["cam-c1", "cam-c2"], 4
NOW = datetime.now(UTC)
MSGS = generate(SITE, CAMS, NOW, seed=5)
OPEN_DATA = (
    f"open_data:\n  k: {K}\n  licence: CC0-1.0\n  licence_url: https://creativecommons.org/publicdomain/zero/1.0/\n"
    "  publisher: {name: 'Sở GTVT Bình Định', url: 'https://sgtvt.binhdinh.gov.vn'}\n"
    "  base_url: http://testserver\n  dump_interval_s: 0.2\n"
)


@pytest.fixture(scope="module")
def site(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> SiteConfig:
    path = site_file(tmp_path_factory.mktemp("s"), SITE, CAMS, OPEN_DATA)
    s = load_site(path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, s.site.timezone, "off")
        store(conn, BatchWriter("plain", s.site.timezone), MSGS, chunk=300)
    return s


@pytest.fixture(scope="module")
def client(fresh_db: str, site: SiteConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path = site_file(tmp_path_factory.mktemp("c"), SITE, CAMS, OPEN_DATA)
    settings = Settings.from_env({"DATABASE_URL": fresh_db, "CITYWATCH_SITE": str(path)})
    with TestClient(create_app(settings, site, ingest=False)) as c:
        yield c


async def _scheduled_job(dsn: str, site: SiteConfig) -> list[date]:
    """The server's job (as started in the lifespan) writes the due days by itself."""
    async with AsyncConnectionPool(dsn, open=False, kwargs={"autocommit": True}) as pool:
        tasks = jobs.start(pool, site)
        try:
            for _ in range(100):
                await asyncio.sleep(0.2)
                if not await dumps.days_due(pool, site, datetime.now(UTC)):
                    break
        finally:
            await jobs.stop(tasks)
        return [d.day for d in await dumps.list_dumps(pool, date(2000, 1, 1))]


def test_the_job_dumps_every_finished_day(fresh_db: str, site: SiteConfig) -> None:
    days = sorted(set(asyncio.run(_scheduled_job(fresh_db, site))))
    d0 = start_of_data(NOW).date()
    # the two whole days before today (today has not ended)
    assert days == [d0, d0 + timedelta(days=1)]


def _texts(values: list[dict[str, str]]) -> dict[str, str]:
    return {v["@language"]: v["@value"] for v in values}


def test_a_third_party_gets_everything_from_the_catalogue(client: TestClient) -> None:
    ok, why = schemas.models_present()
    if not ok:
        pytest.skip(why)
    r = client.get("/open/v1/catalog")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/ld+json")
    cat = r.json()
    assert cat["@type"] == "dcat:Catalog"
    assert set(_texts(cat["dct:title"])) == {"vi", "en"}
    by_id = {d["dct:identifier"]: d for d in cat["dcat:dataset"]}
    assert set(by_id) == {"traffic-flow-hourly", "traffic-flow-daily", "cameras"}
    hourly = by_id["traffic-flow-hourly"]
    assert set(_texts(hourly["dct:title"])) == {"vi", "en"}
    assert set(_texts(hourly["dct:description"])) == {"vi", "en"}
    assert hourly["dct:license"]["dct:identifier"] == "CC0-1.0"
    assert hourly["dct:publisher"]["foaf:name"] == "Sở GTVT Bình Định"
    assert hourly["dct:accrualPeriodicity"]["@id"].endswith("/daily")
    assert hourly["dct:spatial"]["dcat:bbox"]["@value"].startswith("POLYGON((")
    assert hourly["dct:temporal"]["dcat:startDate"] == start_of_data(NOW).date().isoformat()
    downloads = [d for d in hourly["dcat:distribution"] if "dcat:downloadURL" in d]
    assert {d["dcat:mediaType"] for d in downloads} == {"text/csv", "application/vnd.apache.parquet"}
    for dist in downloads:
        got = client.get(dist["dcat:downloadURL"]["@id"])
        assert got.status_code == 200, dist
        assert hashlib.sha256(got.content).hexdigest() == dist["spdx:checksum"]["spdx:checksumValue"]
        if dist["dcat:mediaType"] == "text/csv":
            rows = list(csv.DictReader(io.StringIO(got.text)))
            counts = [int(row["count"]) for row in rows]
            assert {row["bin"] for row in rows} == {"1h"}
        else:
            counts = pq.read_table(io.BytesIO(got.content)).column("count").to_pylist()
        assert counts
        assert min(counts) >= K
        sha = client.get(dist["dcat:downloadURL"]["@id"] + ".sha256").text
        assert sha.split()[0] == dist["spdx:checksum"]["spdx:checksumValue"]
    api = next(d for d in hourly["dcat:distribution"] if d["dcat:mediaType"] == "application/ld+json")
    ents = client.get(
        api["dcat:accessURL"]["@id"], params={"date": hourly["dct:temporal"]["dcat:endDate"]}
    ).json()
    assert ents
    for e in ents:
        assert schemas.errors(to_key_values(e)) == []
    cams = by_id["cameras"]["dcat:distribution"][0]["dcat:downloadURL"]["@id"]
    assert len(client.get(cams).json()["features"]) == len(CAMS)


def test_dump_equals_the_api_for_that_day(client: TestClient) -> None:
    day = start_of_data(NOW).date().isoformat()
    dump = client.get(f"/open/v1/dumps/traffic-flow-daily/{day}.csv")
    api = client.get("/open/v1/flow", params={"bin": "1d", "date": day, "format": "csv"})
    assert dump.status_code == api.status_code == 200
    assert dump.text == api.text


def test_missing_dump_is_404(client: TestClient) -> None:
    assert client.get("/open/v1/dumps/traffic-flow-daily/2001-01-01.csv").status_code == 404
    assert client.get("/open/v1/dumps/secrets/2001-01-01.csv").status_code == 404
