"""Tabular responses: JSON, CSV or Parquet from the same rows."""

from __future__ import annotations

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
            writer.writerow([_cell(r[c], tz) for c in columns])
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
