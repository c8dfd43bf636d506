"""Authentication and authorisation against the real app and database.

The role x endpoint matrix walks every route the app has (a new route without an entry in ``EXPECTED``
fails the test), for anonymous callers, each role, and an API key: 401 without credentials, 403 for a
role without the permission, and anything but 401/403 for one with it. Then the abuse cases: wrong
passwords (same answer for unknown users, rate-limited with 429), expired / forged / ``alg=none``
tokens, a disabled user's token, a revoked API key, camera-group scoping."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from citywatch.site import load_site
from contract import IncidentEvent
from server.app import create_app
from server.auth import tokens
from server.auth.ratelimit import LoginLimiter
from server.auth.roles import ROLE_PERMS, Perm, Role
from server.auth.users import create_api_key, create_user, set_disabled
from server.db.migrate import migrate
from server.ingest.writer import BatchWriter
from server.settings import Settings
from tests.server.helpers import PASSWORD, incident, login, write_site
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration

SECRET = "x" * 40
SITE = "authsite"
IID = uuid.uuid4()

#: (method, path) -> the permission it needs; None: open to anyone.
EXPECTED: dict[tuple[str, str], Perm | None] = {
    ("GET", "/healthz"): None,
    ("POST", "/api/v1/auth/token"): None,
    ("GET", "/metrics"): Perm.METRICS,
    ("GET", "/api/v1/auth/me"): Perm.SITE,  # every role has SITE: any valid credential
    ("GET", "/api/v1/users"): Perm.ADMIN,
    ("POST", "/api/v1/users"): Perm.ADMIN,
    ("PATCH", "/api/v1/users/{username}"): Perm.ADMIN,
    ("POST", "/api/v1/api-keys"): Perm.ADMIN,
    ("GET", "/api/v1/api-keys"): Perm.ADMIN,
    ("DELETE", "/api/v1/api-keys/{name}"): Perm.ADMIN,
    ("GET", "/api/v1/audit/verify"): Perm.ADMIN,
    ("GET", "/api/v1/audit"): Perm.ADMIN,
    ("GET", "/api/v1/alerting/rules"): Perm.ADMIN,
    ("PUT", "/api/v1/alerting/rules"): Perm.ADMIN,
    ("GET", "/api/v1/history/volume"): Perm.HISTORY,
    ("GET", "/api/v1/history/peak-hours"): Perm.HISTORY,
    ("GET", "/api/v1/history/compare"): Perm.HISTORY,
    ("GET", "/api/v1/history/incidents"): Perm.HISTORY,
    ("GET", "/api/v1/history/turning-movements"): Perm.HISTORY,
    ("GET", "/api/v1/sla"): Perm.HISTORY,
    ("GET", "/api/v1/live/cameras"): Perm.LIVE,
    ("GET", "/api/v1/live/incidents"): Perm.LIVE,
    ("GET", "/api/v1/cameras/{camera_id}/frame.jpg"): Perm.LIVE,
    ("GET", "/api/v1/incidents"): Perm.INCIDENTS,
    ("GET", "/api/v1/incidents/{incident_id}"): Perm.INCIDENTS,
    ("GET", "/api/v1/incidents/{incident_id}/snapshot"): Perm.EVIDENCE,
    ("GET", "/api/v1/incidents/{incident_id}/clip"): Perm.EVIDENCE,
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): Perm.ACKNOWLEDGE,
    ("POST", "/api/v1/incidents/{incident_id}/assign"): Perm.WORK,
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): Perm.WORK,
    ("POST", "/api/v1/incidents/{incident_id}/false-alarm"): Perm.WORK,
    ("GET", "/api/v1/site"): Perm.SITE,
    # open data (docs/open-data.md): public by design, aggregates only
    **{
        ("GET", f"/open/v1/{p}"): None
        for p in ("flow", "cameras.geojson", "alerts", "about", "usage", "catalog", "dumps/{dataset}/{file}")
    },
    ("GET", "/api/v1/fleet"): Perm.LIVE,
    ("GET", "/api/v1/fleet/cameras/{camera_id}"): Perm.ADMIN,
    ("PUT", "/api/v1/fleet/cameras/{camera_id}"): Perm.ADMIN,
    ("DELETE", "/api/v1/fleet/cameras/{camera_id}"): Perm.ADMIN,
    ("GET", "/api/v1/fleet/site.yaml"): Perm.ADMIN,
    ("PUT", "/api/v1/fleet/site.yaml"): Perm.ADMIN,
    ("PUT", "/api/v1/fleet/groups/{group}/model"): Perm.ADMIN,
    ("POST", "/api/v1/fleet/groups/{group}/model/rollback"): Perm.ADMIN,
}
#: Pages and files that hold no data (the page asks for a login before it fetches anything).
PUBLIC_PAGES = {"/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}

PARAMS = {
    "start": "2026-01-01T00:00:00+07:00",
    "end": "2026-01-02T00:00:00+07:00",
    "a_start": "2026-01-01T00:00:00+07:00",
    "a_end": "2026-01-02T00:00:00+07:00",
    "b_start": "2026-01-02T00:00:00+07:00",
    "b_end": "2026-01-03T00:00:00+07:00",
}
BODIES: dict[str, Any] = {
    "/api/v1/users": {"username": f"u{uuid.uuid4().hex[:6]}", "password": PASSWORD, "role": "planner"},
    "/api/v1/users/{username}": {"disabled": False},
    "/api/v1/api-keys": {"name": "k", "role": "planner"},
    "/api/v1/alerting/rules": [],
    "/api/v1/fleet/cameras/{camera_id}": {"name": ""},  # invalid: refused with 422, nothing changes
    "/api/v1/fleet/groups/{group}/model": {"model": "m.onnx", "sha256": "0" * 64},
}


@pytest.fixture(scope="module")
def app_env(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    path = write_site(tmp_path_factory.mktemp("site"), SITE, "citywatch", ["cam-a", "cam-b"])
    # cam-b in its own group, for the scoping test.
    path.write_text(
        path.read_text().replace('name: "Camera cam-b"', 'name: "Camera cam-b"\n    group: harbour')
    )
    site = load_site(path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone)
        writer = BatchWriter("plain", site.site.timezone)
        writer.write(conn, [acc(incident(SITE, "cam-b", 1, IID, IncidentEvent.START, datetime.now(UTC)))])
    settings = Settings.from_env({"DATABASE_URL": fresh_db, "CITYWATCH_JWT_SECRET": SECRET})
    return create_app(settings, site, ingest=False), fresh_db


def _call(client: TestClient, method: str, path: str) -> int:
    concrete = (
        path.replace("{username}", "nobody-here")
        .replace("{name}", "no-such-key")
        .replace("{incident_id}", str(uuid.uuid4()))
        .replace("{camera_id}", "cam-a")
        .replace("{group}", "no-such-group")  # 404: nothing rolled out under the other tests
    )
    if method == "DELETE" and path.startswith("/api/v1/fleet/"):
        concrete = concrete.replace("cam-a", "no-such-camera")  # 404: the other tests keep cam-a
    body = BODIES.get(path)
    if method == "POST" and "/incidents/" in path:
        body = {"note": "n", "assignee": "unit"}
    r = client.request(method, concrete, params=PARAMS if method == "GET" else None, json=body)
    return int(r.status_code)


def test_every_route_is_in_the_matrix(app_env: tuple[Any, str]) -> None:
    app, _ = app_env
    # Every operation the app serves is in its OpenAPI document (the page route is hidden from it).
    paths = app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() for m in ops} - {("GET", p) for p in PUBLIC_PAGES}
    assert routes == set(EXPECTED), f"unlisted: {routes - set(EXPECTED)}; gone: {set(EXPECTED) - routes}"


@pytest.mark.parametrize("who", ["anonymous", *[r.value for r in Role], "api-key-operator"])
def test_role_endpoint_matrix(app_env: tuple[Any, str], who: str) -> None:
    app, dsn = app_env
    with TestClient(app) as client:
        role: Role | None = None
        if who == "api-key-operator":
            key = create_api_key(dsn, f"k-{uuid.uuid4().hex[:6]}", "operator", "tests")
            client.headers["Authorization"] = f"Bearer {key}"
            role = Role.OPERATOR
        elif who != "anonymous":
            role = Role(who)
            login(client, dsn, who)
        wrong = []
        for (method, path), perm in EXPECTED.items():
            code = _call(client, method, path)
            if perm is None:
                ok = code not in {401, 403}
            elif role is None:
                ok = code == 401
            elif perm in ROLE_PERMS[role]:
                ok = code not in {401, 403} and code < 500
            else:
                ok = code == 403
            if not ok:
                wrong.append(f"{method} {path} -> {code} (needs {perm})")
        assert not wrong, f"{who}: " + "; ".join(wrong)


def _ws_close_code(client: TestClient, first: dict[str, str]) -> int:
    with client.websocket_connect("/api/v1/live/ws") as ws:
        ws.send_json(first)
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    return info.value.code


def test_websocket_needs_a_token_and_the_live_role(app_env: tuple[Any, str]) -> None:
    app, dsn = app_env
    with TestClient(app) as client:
        # The token comes in the first message after the accept (never in the URL: issue 12).
        for first, code in (({"type": "auth", "token": "forged"}, 4401), ({"type": "auth"}, 4401)):
            assert _ws_close_code(client, first) == code
        planner = login(client, dsn, "planner")
        assert _ws_close_code(client, {"type": "auth", "token": planner}) == 4403


def test_login_failures_look_alike_and_are_rate_limited(app_env: tuple[Any, str]) -> None:
    app, dsn = app_env
    name = f"victim-{uuid.uuid4().hex[:6]}"
    create_user(dsn, name, PASSWORD, "police")
    app.state.login_limiter = LoginLimiter(base_delay_s=0.01, max_delay_s=0.05)  # quick delays
    with TestClient(app) as client:
        wrong = client.post("/api/v1/auth/token", data={"username": name, "password": "not-it-at-all"})
        unknown = client.post("/api/v1/auth/token", data={"username": "ghost-user", "password": "whatever1"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json() == {"detail": "wrong username or password"}
        for _ in range(4):
            client.post("/api/v1/auth/token", data={"username": name, "password": "still-wrong"})
        # Five failures from one address on one user: that address is throttled for that user ...
        limited = client.post("/api/v1/auth/token", data={"username": name, "password": "again-wrong"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        # ... but the user is not locked out: the right password from elsewhere gets in (issue 12).
        elsewhere = TestClient(app, client=("192.0.2.1", 50000))  # shares the open app (no lifespan)
        ok = elsewhere.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
        assert ok.status_code == 200
        # Another user from the same address is not locked out by someone else's failures (yet).
        other = f"other-{uuid.uuid4().hex[:6]}"
        create_user(dsn, other, PASSWORD, "planner")
        assert (
            client.post("/api/v1/auth/token", data={"username": other, "password": PASSWORD}).status_code
            == 200
        )


def test_bad_tokens_and_revocation(app_env: tuple[Any, str]) -> None:
    app, dsn = app_env
    with TestClient(app) as client:
        token = login(client, dsn, "operator")
        assert client.get("/api/v1/auth/me").status_code == 200
        username = client.get("/api/v1/auth/me").json()["username"]
        now = time.time()
        expired = tokens.issue(SECRET, username, 1, 60, now=now - 3600)
        forged = tokens.issue("y" * 40, username, 1, 3600)
        unsigned = jwt.encode({"iss": "citywatch", "sub": username, "ver": 1, "iat": int(now),
                               "exp": int(now) + 3600}, key=None, algorithm="none")  # fmt: skip
        for bad in (expired, forged, unsigned, token[:-4] + "AAAA", "garbage"):
            r = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad
        # A good token under another scheme is no credential.
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Basic {token}"}).status_code == 401
        set_disabled(dsn, username)
        assert client.get("/api/v1/auth/me").status_code == 401  # disabling revokes the token at once
        set_disabled(dsn, username, False)
        assert client.get("/api/v1/auth/me").status_code == 401  # ... for good: log in again
        admin = TestClient(app)
        login(admin, dsn, "admin")
        key = admin.post("/api/v1/api-keys", json={"name": "scraper", "role": "operator"}).json()["key"]
        assert client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert admin.delete("/api/v1/api-keys/scraper").status_code == 204
        assert client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_camera_group_scoping(app_env: tuple[Any, str]) -> None:
    app, dsn = app_env
    with TestClient(app) as centre, TestClient(app) as harbour:
        login(centre, dsn, "police", groups=["default"])
        login(harbour, dsn, "police", groups=["harbour"])
        assert [c["camera_id"] for c in centre.get("/api/v1/site").json()["cameras"]] == ["cam-a"]
        assert [c["camera_id"] for c in harbour.get("/api/v1/live/cameras").json()["cameras"]] == ["cam-b"]
        assert centre.get(f"/api/v1/incidents/{IID}").status_code == 404  # not theirs: not there
        assert harbour.get(f"/api/v1/incidents/{IID}").status_code == 200
        assert centre.post(f"/api/v1/incidents/{IID}/acknowledge", json={"note": "x"}).status_code == 404
        assert [i["incident_id"] for i in centre.get("/api/v1/incidents").json()["incidents"]] == []
        vol = centre.get("/api/v1/history/volume", params={**PARAMS, "cameras": "cam-b"})
        assert vol.status_code in {200, 422} and "cam-b" not in vol.text


def test_planner_cannot_reach_evidence(app_env: tuple[Any, str]) -> None:
    app, dsn = app_env
    with TestClient(app) as planner:
        login(planner, dsn, "planner")
        assert planner.get(f"/api/v1/incidents/{IID}/snapshot").status_code == 403
        assert planner.get(f"/api/v1/incidents/{IID}").status_code == 403
        assert planner.get("/api/v1/live/incidents").status_code == 403
        assert planner.get("/api/v1/history/volume", params=PARAMS).status_code == 200


def test_request_body_size_is_limited(app_env: tuple[Any, str]) -> None:
    app, dsn = app_env
    with TestClient(app) as admin:
        login(admin, dsn, "admin")
        big = [{"id": f"r{i}", "channels": ["live"], "description": "x" * 900} for i in range(2000)]
        r = admin.put("/api/v1/alerting/rules", json=big)
        assert r.status_code == 413 and r.json() == {"detail": "request body too large"}

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"["
            for _ in range(3000):
                yield b'{"id": "a", "channels": ["live"], "description": "' + b"y" * 500 + b'"},'
            yield b"{}]"

        r = admin.put(
            "/api/v1/alerting/rules", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413
        assert admin.get("/api/v1/auth/me").status_code == 200  # and the server carries on
