"""A site config as plain JSON data and back, shared by the server's registry and the edge's config
sync (contract/fleet.py), so both validate exactly as ``citywatch config check`` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from citywatch.site import Camera, FileSource, SiteConfig, parse_site


def document(cfg: SiteConfig) -> dict[str, Any]:
    """The site as plain JSON data: the fields its author set (defaults not spelled out stay so)."""
    out: dict[str, Any] = cfg.model_dump(mode="json", exclude_unset=True)
    # Always spelled out, so an exported file names its prefix and groups even when they are defaults.
    out["mqtt_prefix"] = cfg.mqtt_prefix
    for cam, data in zip(cfg.cameras, out["cameras"], strict=True):
        data["group"] = cam.group
    return out


def camera_document(cam: Camera) -> dict[str, Any]:
    data: dict[str, Any] = cam.model_dump(mode="json", exclude_unset=True)
    data["group"] = cam.group
    return data


def validate(doc: dict[str, Any], source: str = "<registry>") -> SiteConfig:
    """Validate site data as ``citywatch config check`` does (JSON is YAML); no variable expansion.

    Raises :class:`citywatch.site.ConfigError` listing every issue with its path.
    """
    return parse_site(json.dumps(doc), source, env={})


def to_yaml(cfg: SiteConfig) -> str:
    return yaml.safe_dump(document(cfg), sort_keys=False, allow_unicode=True)


def resolve_paths(cfg: SiteConfig, base: Path) -> SiteConfig:
    """Relative video and model paths made absolute against ``base`` (as :func:`load_site` does)."""
    cameras = []
    for cam in cfg.cameras:
        update: dict[str, Any] = {}
        if isinstance(cam.source, FileSource) and not Path(cam.source.path).is_absolute():
            update["source"] = cam.source.model_copy(update={"path": str((base / cam.source.path).resolve())})
        model = cam.detector.model
        if "/" in model and not Path(model).is_absolute():
            update["detector"] = cam.detector.model_copy(update={"model": str((base / model).resolve())})
        cameras.append(cam.model_copy(update=update) if update else cam)
    return cfg.model_copy(update={"cameras": cameras})
