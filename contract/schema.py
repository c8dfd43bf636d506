"""JSON Schema files generated from the payload models, committed under ``schemas/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contract.acks import AckMessage
from contract.fleet import EdgeAnnounce, EdgeConfig
from contract.messages import MESSAGE_TYPES, SCHEMA_VERSION


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of every payload schema."""
    out: dict[str, str] = {}
    models: dict[str, type[Any]] = {
        **MESSAGE_TYPES,
        "ack": AckMessage,
        "announce": EdgeAnnounce,
        "config": EdgeConfig,
    }
    for kind, model in models.items():
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://citywatch.example/schemas/v{SCHEMA_VERSION}/{kind}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"v{SCHEMA_VERSION}/{kind}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(folder: str | Path, check: bool = False) -> list[str]:
    """Write the schemas (or, with ``check``, only compare). Returns the files that were stale."""
    base = Path(folder)
    stale = []
    for name, text in render_schemas().items():
        target = base / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            stale.append(name)
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    return stale
