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


def need_shared(path: Path) -> Path:
    """Skip (never in CI) when a ../shared file is absent, saying where to get it."""
    if not path.exists():
        reason = (
            f"{path} is absent: set CITYWATCH_SHARED, or run `citywatch assets fetch videos` / "
            "`citywatch assets fetch models` and point CITYWATCH_SHARED at the result"
        )
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return path


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
