"""HTTP plumbing of the public API: a response cache with ETag/Last-Modified, a per-client rate
limit, and request counts for the public page. In memory, per server process."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import Request, Response

LD_JSON = "application/ld+json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
GEOJSON = "application/geo+json"


def documented(*media: str, ld_array: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a public route answering ``media`` types (and 304 / 404 / 429); its
    JSON-LD is an array of entities, or (``ld_array=False``) one document."""
    ld = {"type": "array", "items": {"type": "object"}} if ld_array else {"type": "object"}
    schemas = {LD_JSON: ld, GEOJSON: {"type": "object"}}
    return {
        200: {"content": {m: {"schema": schemas.get(m, {"type": "string"})} for m in media}},
        304: {"description": "Not modified (ETag / Last-Modified)"},
        404: {"description": "Not published on this server, or unknown camera / file"},
        429: {"description": "Rate limit: see Retry-After"},
    }


@dataclass(frozen=True, slots=True)
class Cached:
    body: bytes
    media_type: str
    etag: str
    last_modified: datetime
    expires: float
    headers: tuple[tuple[str, str], ...] = ()


class ResponseCache:
    """Answers by key for ``ttl_s``; an answer whose bytes did not change keeps its Last-Modified."""

    def __init__(self, ttl_s: float, max_entries: int = 2000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._items: dict[str, Cached] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: float | None = None) -> Cached | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            hit = self._items.get(key)
        return hit if hit is not None and hit.expires > now else None

    def put(
        self, key: str, body: bytes, media_type: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> Cached:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self._lock:
            old = self._items.get(key)
            modified = (
                old.last_modified
                if old is not None and old.etag == etag
                else datetime.now(UTC).replace(microsecond=0)
            )
            item = Cached(body, media_type, etag, modified, time.monotonic() + self._ttl, headers)
            if len(self._items) >= self._max:
                self._items.clear()  # crude but bounded; the cache refills in one TTL
            self._items[key] = item
        return item


def respond(request: Request, item: Cached) -> Response:
    """200 with the body, or 304 when the client's ETag (or, without one, its date) still holds."""
    headers = {
        "ETag": item.etag,
        "Last-Modified": format_datetime(item.last_modified, usegmt=True),
        "Cache-Control": "public, max-age=60",
        "Access-Control-Allow-Origin": "*",
        **dict(item.headers),
    }
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if item.etag in {t.strip() for t in inm.split(",")} or inm.strip() == "*":
            return Response(status_code=304, headers=headers)
    elif (ims := request.headers.get("if-modified-since")) is not None:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            since = None
        if since is not None and since.tzinfo is not None and item.last_modified <= since:
            return Response(status_code=304, headers=headers)
    return Response(item.body, media_type=item.media_type, headers=headers)


class RateLimiter:
    """At most ``per_min`` requests per client in any 60 s window."""

    def __init__(self, per_min: int, max_clients: int = 100_000) -> None:
        self._per_min = per_min
        self._max = max_clients
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> float:
        """0 and the request counted when allowed; otherwise seconds to wait (not counted)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._hits.get(client)
            if q is None:
                if len(self._hits) >= self._max:
                    self._hits.clear()
                q = self._hits[client] = deque()
            while q and now - q[0] >= 60.0:
                q.popleft()
            if len(q) >= self._per_min:
                return max(60.0 - (now - q[0]), 0.001)
            q.append(now)
            return 0.0


class Usage:
    """Public requests per dataset and UTC day, shown on the public page."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def hit(self, dataset: str) -> None:
        day = datetime.now(UTC).date().isoformat()
        with self._lock:
            self._counts[(day, dataset)] += 1

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            items = sorted(self._counts.items())
        return [{"day": d, "dataset": ds, "requests": n} for (d, ds), n in items]
