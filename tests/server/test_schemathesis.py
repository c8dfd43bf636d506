"""Schemathesis against the real server's OpenAPI document, over real HTTP, with each role's
credentials: generated requests (valid and invalid) never cause a 5xx, and every response matches the
schema and content type the document declares."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from server.auth.users import create_user
from tests.server.helpers import PASSWORD, write_site
from tests.server.server_proc import ServerProcess

pytestmark = pytest.mark.integration
ROLES = ("admin", "operator", "police", "planner")


@pytest.fixture(scope="module")
def server(
    fresh_db: str, tmp_path_factory: pytest.TempPathFactory, mqtt_host_port: tuple[str, int]
) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    tag = uuid.uuid4().hex[:8]
    site: Path = write_site(tmp, f"st{tag}", f"st{tag}", ["cam-1", "cam-2"])
    host, port = mqtt_host_port
    proc = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://{host}:{port}",
            "MQTT_CLIENT_ID": f"st-{tag}",
            "MQTT_SESSION_EXPIRY_S": "60",
            "CITYWATCH_SITE": str(site),
            # Thousands of generated requests per role: above the per-user API rate (tested on its
            # own in tests/server/security/test_api_limits.py), which would answer most of them 429.
            "CITYWATCH_API_RATE": "100000",
            "CITYWATCH_API_BURST": "100000",
        },
        tmp / "server.log",
    )
    proc.start()
    try:
        tokens = {}
        for role in ROLES:
            name = f"st-{role}"
            create_user(fresh_db, name, PASSWORD, role)
            r = httpx.post(f"{proc.url}/api/v1/auth/token", data={"username": name, "password": PASSWORD})
            tokens[role] = r.json()["access_token"]
        proc.tokens = tokens  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()
        log = proc.log_tail(200_000)
        assert "Traceback" not in log, log[-4000:]


def test_api_conforms_for_every_role(server: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = 0
    examples = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the server's OpenAPI document is invalid: {result.err()}"
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            nonlocal examples
            examples += 1
            for role in ROLES:  # the same generated request with each role's credentials
                case.call_and_validate(
                    base_url=server.url,
                    headers={"Authorization": f"Bearer {server.tokens[role]}"},
                    checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
                )

        run()
    assert operations >= 25 and examples >= operations
