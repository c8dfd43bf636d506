"""Daily dumps: one CSV and one Parquet file per dataset and local day, with their SHA-256, written by
a job in the server once a day has ended and its publication delay has passed. Stored in the database
(``opendata_dumps``) so every server instance serves the same bytes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

from citywatch.site import SiteConfig
from server.opendata import tables
from server.opendata.cells import PublicBin, public_cells

log = logging.getLogger(__name__)

#: dataset id -> bucket size of its rows.
DATASETS: dict[str, PublicBin] = {"traffic-flow-hourly": "1h", "traffic-flow-daily": "1d"}
FORMATS = ("csv", "parquet")


@dataclass(frozen=True, slots=True)
class DumpInfo:
    dataset: str
    day: date
    format: str
    sha256: str
    rows: int
    size: int
    sample: bool
    created_at: datetime


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start.astimezone(UTC), (start + timedelta(days=1, hours=12)).replace(hour=0).astimezone(UTC)


_DAYS_WITH_DATA: LiteralString = """
SELECT DISTINCT (bucket AT TIME ZONE %(tz)s)::date FROM count_bins_1d
WHERE bucket >= %(start)s AND bucket < %(end)s
"""
_DONE: LiteralString = "SELECT DISTINCT day FROM opendata_dumps WHERE day >= %(first)s"
_UPSERT: LiteralString = """
INSERT INTO opendata_dumps (dataset, day, format, data, sha256, rows, sample)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (dataset, day, format) DO UPDATE
SET data = EXCLUDED.data, sha256 = EXCLUDED.sha256, rows = EXCLUDED.rows, sample = EXCLUDED.sample,
    created_at = now()
"""


async def days_due(pool: Any, site: SiteConfig, now: datetime) -> list[date]:
    """Local days with data, within the kept window, public by now, and not dumped yet."""
    od = site.open_data
    tz = ZoneInfo(site.site.timezone)
    last = (now - timedelta(seconds=od.delay_s)).astimezone(tz).date() - timedelta(days=1)
    first = last - timedelta(days=od.dump_days - 1)
    lo, _ = _day_bounds(first, tz)
    _, hi = _day_bounds(last, tz)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(_DAYS_WITH_DATA, {"tz": tz.key, "start": lo, "end": hi})
        with_data = {r[0] for r in await cur.fetchall()}
        await cur.execute(_DONE, {"first": first})
        done = {r[0] for r in await cur.fetchall()}
    return sorted(d for d in with_data - done if first <= d <= last)


async def write_day(pool: Any, site: SiteConfig, day: date) -> int:
    """Write every dataset's files for ``day``; returns the number of files."""
    tz = ZoneInfo(site.site.timezone)
    lo, hi = _day_bounds(day, tz)
    cams = [c.id for c in site.cameras]
    n = 0
    async with pool.connection() as conn:
        for dataset, g in DATASETS.items():
            page = await public_cells(
                conn, cameras=cams, start=lo, end=hi, g=g, tz=tz, k=site.open_data.k, until=hi
            )
            sample = any(c.sample for c in page.cells)
            files = {
                "csv": await asyncio.to_thread(tables.to_csv, site.site.id, page.cells, g, tz),
                "parquet": await asyncio.to_thread(tables.to_parquet, site.site.id, page.cells, g),
            }
            async with conn.transaction(), conn.cursor() as cur:
                for fmt, data in files.items():
                    digest = hashlib.sha256(data).hexdigest()
                    await cur.execute(_UPSERT, (dataset, day, fmt, data, digest, len(page.cells), sample))
                    n += 1
    return n


async def run_once(pool: Any, site: SiteConfig, now: datetime | None = None) -> list[date]:
    """Dump every due day; returns the days written."""
    due = await days_due(pool, site, now or datetime.now(UTC))
    for day in due:
        await write_day(pool, site, day)
        log.info("open data: wrote the dumps of %s", day)
    return due


async def run_forever(pool: Any, site: SiteConfig) -> None:
    """The scheduled job: look for due days every ``dump_interval_s``; errors are logged and retried."""
    while True:
        try:
            await run_once(pool, site)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("open data: dump job failed; retrying in %.0f s", site.open_data.dump_interval_s)
        await asyncio.sleep(site.open_data.dump_interval_s)


_LIST: LiteralString = """
SELECT dataset, day, format, sha256, rows, octet_length(data), sample, created_at FROM opendata_dumps
WHERE day >= %(first)s ORDER BY dataset, day, format
"""


async def list_dumps(pool: Any, first: date) -> list[DumpInfo]:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(_LIST, {"first": first})
        return [DumpInfo(*r) for r in await cur.fetchall()]


_STATE: LiteralString = "SELECT count(*), max(created_at) FROM opendata_dumps"


async def dumps_state(pool: Any) -> str:
    """Changes whenever a dump is written: part of the catalogue's cache key."""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(_STATE)
        row = await cur.fetchone()
    return f"{row[0]}:{row[1]}" if row else ""


_GET: LiteralString = (
    "SELECT data, sha256 FROM opendata_dumps WHERE dataset = %s AND day = %s AND format = %s"
)


async def get_dump(pool: Any, dataset: str, day: date, fmt: str) -> tuple[bytes, str] | None:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(_GET, (dataset, day, fmt))
        row = await cur.fetchone()
    return None if row is None else (bytes(row[0]), str(row[1]))
