"""Shared fixtures: paths to ../shared, the real broker and database, unique names per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CITYWATCH_SHARED", ROOT.parent / "shared"))
VIDEOS = SHARED / "videos"
LABELS = SHARED / "labels"
MODELS = SHARED / "models"
MODEL_PATH = Path(os.environ.get("CITYWATCH_MODEL", MODELS / "yolo11n_int8_openvino_model"))

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _from_manifest(path: Path) -> Path | None:
    """Where ../shared is absent (a user's machine): the same clip or model from the public sources
    named in the manifests, downloaded once into .cache/assets when the network allows."""
    from citywatch.assets import AssetError, fetch, read_manifest

    kind = "models" if path.parent.name.endswith("_model") or path.name.endswith("_model") else "videos"
    dest = ROOT / ".cache" / "assets" / kind
    name = (
        path.name if kind == "videos" else (path.name if path.name.endswith("_model") else path.parent.name)
    )
    wanted = [a for a in read_manifest(kind) if a.path == name or a.path.startswith(name + "/")]
    if not wanted:
        return None
    try:
        fetch(wanted, dest, timeout=20)
    except AssetError:
        return None
    return dest / name


def need_shared(path: Path) -> Path:
    """The ../shared file, or its public copy from the manifests; else skip (never in CI) saying why."""
    if path.exists():
        return path
    fetched = _from_manifest(path)
    if fetched is not None and fetched.exists():
        return fetched
    reason = (
        f"{path} is absent and could not be downloaded from the manifests: set CITYWATCH_SHARED, or run "
        "`citywatch assets fetch videos` / `citywatch assets fetch models` where the network allows"
    )
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, database schemas, client ids."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def mqtt_host_port() -> tuple[str, int]:
    host = os.environ.get("CITYWATCH_TEST_MQTT_HOST", "127.0.0.1")
    port = int(os.environ.get("CITYWATCH_TEST_MQTT_PORT", "1883"))
    return host, port


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get(
        "CITYWATCH_TEST_DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
    )
