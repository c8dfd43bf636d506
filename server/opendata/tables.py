"""Public cells as CSV or Parquet (the same columns), and camera locations as GeoJSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from citywatch.site import SiteConfig
from server.opendata.cells import Cell, PublicBin

COLUMNS = (
    "site_id",
    "camera_id",
    "line_id",
    "direction",
    "class",
    "bin",
    "bucket_start",
    "bucket_end",
    "count",
    "sample",
)


def _rows(site_id: str, cells: Sequence[Cell], g: PublicBin, tz: Any) -> list[tuple[Any, ...]]:
    return [
        (
            site_id,
            c.camera_id,
            c.line_id,
            c.direction,
            c.cls,
            g,
            c.bucket.astimezone(tz).isoformat(),
            c.bucket_end.astimezone(tz).isoformat(),
            c.count,
            c.sample,
        )
        for c in cells
    ]


def to_csv(site_id: str, cells: Sequence[Cell], g: PublicBin, tz: Any) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in _rows(site_id, cells, g, tz):
        w.writerow([str(v).lower() if isinstance(v, bool) else v for v in r])
    return buf.getvalue().encode("utf-8")


_SCHEMA = pa.schema(
    [
        ("site_id", pa.string()),
        ("camera_id", pa.string()),
        ("line_id", pa.string()),
        ("direction", pa.string()),
        ("class", pa.string()),
        ("bin", pa.string()),
        ("bucket_start", pa.timestamp("s", tz="UTC")),
        ("bucket_end", pa.timestamp("s", tz="UTC")),
        ("count", pa.int64()),
        ("sample", pa.bool_()),
    ]
)


def to_parquet(site_id: str, cells: Sequence[Cell], g: PublicBin) -> bytes:
    cols: dict[str, list[Any]] = {
        "site_id": [site_id] * len(cells),
        "camera_id": [c.camera_id for c in cells],
        "line_id": [c.line_id for c in cells],
        "direction": [c.direction for c in cells],
        "class": [c.cls for c in cells],
        "bin": [g] * len(cells),
        "bucket_start": [c.bucket for c in cells],
        "bucket_end": [c.bucket_end for c in cells],
        "count": [c.count for c in cells],
        "sample": [c.sample for c in cells],
    }
    buf = io.BytesIO()
    pq.write_table(pa.table(cols, schema=_SCHEMA), buf, compression="zstd")
    return buf.getvalue()


def cameras_geojson(site: SiteConfig) -> dict[str, Any]:
    """Camera positions and their counting lines' names; nothing else about the cameras."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": cam.id,
                "geometry": {"type": "Point", "coordinates": [cam.location.lon, cam.location.lat]},
                "properties": {
                    "camera_id": cam.id,
                    "name": cam.name,
                    "lines": [
                        {
                            "id": ln.id,
                            "name": ln.name or ln.id,
                            "directions": [ln.directions.positive, ln.directions.negative],
                        }
                        for ln in cam.lines
                    ],
                },
            }
            for cam in site.cameras
        ],
    }
