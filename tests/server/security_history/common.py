"""A test server on a fresh database with one logged-in header set per role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from citywatch.site import SiteConfig, load_site
from server.app import create_app
from server.auth.users import create_user
from server.db.migrate import migrate
from server.settings import Settings
from tests.server.helpers import CAMERA_TEMPLATE, PASSWORD, SITE_TEMPLATE

Headers = dict[str, str]
ROLES = ("admin", "operator", "police", "planner")


def write_site(folder: Path, site_id: str, cams: list[str], extra: str = "") -> Path:
    """A site file whose cameras each have lines L1, L2 and ``extra`` (YAML under the camera)."""
    path = folder / f"site-{site_id}.yaml"
    body = "".join(CAMERA_TEMPLATE.format(cam=c) + extra for c in cams)
    path.write_text(SITE_TEMPLATE.format(site_id=site_id, prefix="citywatch", cameras=body), encoding="utf-8")
    return path


def migrated(dsn: str, site_path: Path) -> SiteConfig:
    site = load_site(site_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn, site.site.timezone, "off")  # plain PostgreSQL: the API is the same
    return site


@contextmanager
def serve(
    dsn: str, site_path: Path, env: dict[str, str] | None = None, roles: tuple[str, ...] = ROLES
) -> Iterator[tuple[TestClient, dict[str, Headers]]]:
    """The app (no ingest) and an Authorization header per role (each login hashes a password: only
    the roles a module uses)."""
    site = load_site(site_path)
    settings = Settings.from_env({"DATABASE_URL": dsn, "CITYWATCH_SITE": str(site_path), **(env or {})})
    with TestClient(create_app(settings, site, ingest=False)) as client:
        headers: dict[str, Headers] = {}
        for role in roles:
            name = f"t-{role}-{uuid.uuid4().hex[:8]}"
            create_user(dsn, name, PASSWORD, role, None)
            r = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            headers[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        yield client, headers
