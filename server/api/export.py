"""Tabular responses: JSON, CSV or Parquet from the same rows.

Building a body is CPU work (thousands of rows): :func:`table_response_async` does it in a worker
thread so the event loop keeps serving. CSV cells that a spreadsheet would read as a formula are
neutralised (:func:`csv_safe`): edges send free text that ends up in planners' spreadsheets.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Response
from fastapi.responses import JSONResponse

Format = Literal["json", "csv", "parquet"]
#: OpenAPI: what the ``format`` parameter can make a route answer besides JSON.
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        }
    }
}


#: A spreadsheet starts a formula (or a DDE command) at a cell opening with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell that would open as a formula gets a leading single quote (OWASP's CSV injection
    advice); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cell(value: Any, tz: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def table_response(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    fmt: Format,
    tz: ZoneInfo,
    meta: dict[str, Any],
    name: str,
) -> Response:
    """Times go out in the site's time zone (ISO 8601 with offset)."""
    if fmt == "json":
        body = [{c: (_cell(r[c], tz) if not isinstance(r[c], list) else r[c]) for c in columns} for r in rows]
        return JSONResponse({**meta, "rows": body})
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([csv_safe(_cell(r[c], tz)) for c in columns])
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    import pyarrow as pa  # noqa: PLC0415 - only for Parquet downloads
    import pyarrow.parquet as pq  # noqa: PLC0415

    data = {c: [_cell(r[c], tz) for r in rows] for c in columns}
    out = io.BytesIO()
    pq.write_table(pa.table(data), out)
    return Response(
        out.getvalue(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{name}.parquet"'},
    )


async def table_response_async(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    fmt: Format,
    tz: ZoneInfo,
    meta: dict[str, Any],
    name: str,
) -> Response:
    """:func:`table_response` in a worker thread (off the event loop)."""
    return await asyncio.to_thread(table_response, rows, columns, fmt=fmt, tz=tz, meta=meta, name=name)
