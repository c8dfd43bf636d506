"""Validators for the FIWARE Smart Data Models, offline: the shared schemas' public URLs are mapped to
the local copies in ../shared/standards/smart-data-models (see its SOURCES.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from tests.conftest import SHARED, in_ci

MODELS = SHARED / "standards" / "smart-data-models"
_URLS = {
    "https://smart-data-models.github.io/data-models/common-schema.json": "common-schema.json",
    "https://smart-data-models.github.io/dataModel.Alert/alert-schema.json": "Alert/alert-schema.json",
    "https://smart-data-models.github.io/dataModel.Weather/weather-schema.json": "weather-schema.json",
}
_MODELS = {
    "TrafficFlowObserved": "TrafficFlowObserved/schema.json",
    "Alert": "Alert/schema.json",
    "RoadAccident": "RoadAccident/schema.json",
}


def _load(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MODELS / rel).read_text(encoding="utf-8"))
    return data


def models_present() -> tuple[bool, str]:
    ok = (MODELS / "common-schema.json").exists()
    return ok or in_ci(), f"{MODELS} is absent (set CITYWATCH_SHARED)"


@cache
def validator(entity_type: str) -> jsonschema.protocols.Validator:
    registry: Registry[Any] = Registry().with_resources(
        (url, Resource.from_contents(_load(rel))) for url, rel in _URLS.items()
    )
    schema = _load(_MODELS[entity_type])
    cls = jsonschema.validators.validator_for(schema)
    v: jsonschema.protocols.Validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
    return v


def errors(entity_kv: dict[str, Any]) -> list[str]:
    """Schema errors of one key-values entity (empty when valid)."""
    v = validator(str(entity_kv["type"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(entity_kv)]


def schema_path() -> Path:
    return MODELS
