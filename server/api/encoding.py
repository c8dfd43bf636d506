"""Database values as JSON for API answers: datetimes in the site's time zone (ISO 8601 with offset),
UUIDs as strings, through nested rows and lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo


def site_json(value: Any, tz: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: site_json(v, tz) for k, v in value.items()}
    if isinstance(value, list):
        return [site_json(v, tz) for v in value]
    return value


def site_row(row: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    out: dict[str, Any] = site_json(row, tz)
    return out
