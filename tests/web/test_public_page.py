"""The public open-data page in headless Chromium against a real server (subprocess) with generated
counts: no login, served under a strict CSP, today's and the last week's traffic by road on a map and
in charts, API examples and usage, licence, and the dumps the server's own job wrote."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from citywatch.site import load_site
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.opendata.api import local_day_range
from tests.server.helpers import poll
from tests.server.history_data import store
from tests.server.opendata.data import TZ, generate, site_file
from tests.server.server_proc import ServerProcess
from tests.web.conftest import ARTIFACTS

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CAMS = ["cam-pa", "cam-pb"]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@pytest.fixture(scope="module")
def server(
    fresh_db: str, mqtt_host_port: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    unique = uuid.uuid4().hex[:10]
    site_id = f"pub{unique}"
    tmp = tmp_path_factory.mktemp("pub")
    path = site_file(tmp, site_id, CAMS, "open_data: {k: 3, delay_s: 0}\n")
    site = load_site(path)
    now = datetime.now(UTC)
    msgs = generate(site_id, CAMS, now - timedelta(days=6), seed=2) + [
        m for m in generate(site_id, CAMS, now, seed=9) if m.bin_start >= now - timedelta(days=1)
    ]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone, "off")
        store(conn, BatchWriter("plain", site.site.timezone), msgs, chunk=400)
        # the oldest days are sample data (as `citywatch demo --history` marks them)
        conn.execute("UPDATE count_bins SET sample = true WHERE bin_start < %s", (now - timedelta(days=6),))
    host, port = mqtt_host_port
    proc = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://{host}:{port}",
            "MQTT_CLIENT_ID": f"cw-pub-{unique}",
            "CITYWATCH_SITE": str(path),
            "CITYWATCH_TIMESCALE": "off",
            "CITYWATCH_TILE_URL": "",
            "CITYWATCH_JWT_SECRET": "test-secret-" + unique + "-0123456789abcdef",
        },
        tmp / "server.log",
    )
    proc.start()
    try:
        # the server's dump job runs at start-up: wait for it before any page reads the catalogue
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            poll(
                lambda: conn.execute("SELECT count(*) FROM opendata_dumps").fetchone(),
                lambda r: bool(r and r[0]),
            )
        yield proc
    finally:
        proc.stop()


def _totals(url: str, params: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    r = httpx.get(url + "/open/v1/flow", params={**params, "options": "keyValues", "limit": 5000})
    assert r.status_code == 200, r.text
    for e in r.json():
        out[e["cameraId"]] += e["intensity"]
    return dict(out)


def _open(browser: Any, server: ServerProcess, lang: str) -> tuple[Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(f"localStorage.setItem('citywatch.public.lang', '{lang}')")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

    def with_csp(route: Any) -> None:  # a strict CSP, as a hardened deployment sends
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})

    page.route("**/open/", with_csp)
    page.goto(server.url + "/open/")
    page.wait_for_selector("body[data-ready]", timeout=20_000)
    return page, errors


def test_public_page_shows_traffic_without_login(browser: Any, server: ServerProcess) -> None:
    page, errors = _open(browser, server, "vi")
    assert page.evaluate("document.body.dataset.ready") == "1", page.inner_text("#status")
    assert errors == []
    # the figures in the road table are the API's
    today = datetime.now(TZ).date()
    week = _totals(server.url, {"bin": "1d", "date": (today - timedelta(days=7)).isoformat(), "days": 7})
    now_ = _totals(server.url, {"bin": "1h", "date": today.isoformat()})
    assert sum(week.values()) > 0
    assert sum(now_.values()) > 0
    for cam in CAMS:
        row = page.locator(f'#roads tr[data-camera="{cam}"] td')
        cells = [c.replace(".", "").replace(",", "").replace("\u202f", "") for c in row.all_inner_texts()]
        assert int(cells[1]) == now_.get(cam, 0)
        assert int(cells[2]) == week.get(cam, 0)
    assert page.locator(".road-marker").count() == len(CAMS)
    for chart in ("#c-today", "#c-week"):
        assert page.locator(chart).bounding_box()["height"] > 50
    assert page.evaluate(
        "() => !!Chart.getChart(document.querySelector('#c-today')).data.datasets[0].data.some((v) => v > 0)"
    )
    assert page.locator("#sample-banner").is_visible()
    assert "CC-BY-4.0" in page.inner_text("#licence")
    assert page.locator("#api-list li").count() >= 4
    assert page.locator("#usage tbody tr").count() >= 1
    # downloads come from the catalogue, written by the server's own dump job
    link = page.locator("#dumps a").first
    link.wait_for(timeout=15_000)
    got = httpx.get(server.url + link.get_attribute("href"))
    assert got.status_code == 200
    assert got.text.startswith("site_id,camera_id,")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "public-page.png"), full_page=True)
    page.context.close()


def test_public_page_in_english(browser: Any, server: ServerProcess) -> None:
    page, errors = _open(browser, server, "en")
    assert page.inner_text(".roads h2") == "Traffic by road"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.select_option("#lang", "vi")
    assert page.inner_text(".roads h2") == "Lưu lượng theo tuyến đường"
    assert errors == []
    page.context.close()


def test_day_range_is_local() -> None:
    lo, hi = local_day_range(datetime(2026, 11, 20, tzinfo=TZ).date(), TZ)
    assert lo.hour == 17
    assert hi - lo == timedelta(days=1)
