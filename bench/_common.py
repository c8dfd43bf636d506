"""Shared by the server benchmarks: scratch databases, site files, timing summaries."""

from __future__ import annotations

import socket
import statistics
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
CLASSES = ("car", "motorcycle", "bus", "truck")
CELLS = [
    (ln, d, c)
    for ln, dirs in (("L1", ("north", "south")), ("L2", ("east", "west")))
    for d in dirs
    for c in CLASSES
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def create_database(admin_url: str, name: str | None = None, *, reuse: bool = False) -> tuple[str, bool]:
    """Create (or with ``reuse`` keep) a database; returns its URL and whether it already existed."""
    name = name or f"cw_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if exists and not reuse:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = False
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_db(admin_url, name), exists


def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def write_site(folder: Path, site_id: str, prefix: str, cameras: list[str]) -> Path:
    """A site whose cameras have the lines and directions of :data:`CELLS` (the server dead-letters
    counts naming lines or directions its site config does not know)."""
    cams = "".join(
        f"""  - id: {c}
    name: "Camera {c}"
    location: {{lat: 13.77, lon: 109.22}}
    source: {{kind: webcam, index: 0}}
    lines:
      - {{id: L1, points: [[0.0, 0.5], [1.0, 0.5]], directions: {{positive: north, negative: south}}}}
      - {{id: L2, points: [[0.5, 0.0], [0.5, 1.0]], directions: {{positive: east, negative: west}}}}
"""
        for c in cameras
    )
    path = folder / "site.yaml"
    path.write_text(
        f"""site:
  id: {site_id}
  name: bench
  timezone: Asia/Ho_Chi_Minh
  center: {{lat: 13.77, lon: 109.22}}
mqtt_prefix: {prefix}
cameras:
{cams}""",
        encoding="utf-8",
    )
    return path


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(pct(95), 2),
        "p99_ms": round(pct(99), 2),
        "max_ms": round(ordered[-1], 2),
        "n": len(ordered),
    }
