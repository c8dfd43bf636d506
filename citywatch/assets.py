"""Sample clips and model weights from their manifests: download with checksum, or find them locally.

Nothing here runs at import time or without being asked: the demo calls :func:`fetch` only when the
files are missing and the network allows, and says where to get them otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


class AssetError(Exception):
    """A download failed or a file does not match its checksum."""


@dataclass(frozen=True, slots=True)
class Asset:
    path: str
    url: str
    sha256: str | None


def read_manifest(kind: str) -> list[Asset]:
    """Assets listed in ``sample_videos/manifest.yaml`` (videos) or ``models/manifest.yaml`` (models)."""
    if kind == "videos":
        data = yaml.safe_load((ROOT / "sample_videos" / "manifest.yaml").read_text(encoding="utf-8"))
        return [Asset(c["file"], c["url"], c.get("sha256")) for c in data["clips"]]
    if kind == "models":
        data = yaml.safe_load((ROOT / "models" / "manifest.yaml").read_text(encoding="utf-8"))
        return [Asset(f["path"], f["url"], f.get("sha256")) for m in data["models"] for f in m["files"]]
    raise ValueError(f"unknown asset kind {kind!r} (videos or models)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(assets: list[Asset], dest: Path, timeout: float = 60.0) -> list[Path]:
    """Download every missing asset into ``dest`` and verify checksums; return the local paths."""
    out = []
    for asset in assets:
        target = dest / asset.path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            log.info("downloading %s", asset.url)
            try:
                with urllib.request.urlopen(asset.url, timeout=timeout) as resp, tmp.open("wb") as fh:  # noqa: S310
                    while block := resp.read(1 << 20):
                        fh.write(block)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise AssetError(f"{asset.path}: download from {asset.url} failed: {exc}") from exc
            tmp.rename(target)
        if asset.sha256 is not None:
            got = sha256_of(target)
            if got != asset.sha256:
                raise AssetError(f"{asset.path}: SHA-256 {got} does not match the manifest ({asset.sha256})")
        out.append(target)
    return out
