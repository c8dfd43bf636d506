"""docker-compose.yml cannot run here (no Docker engine): check its structure and referenced files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


def test_services_images_and_ports() -> None:
    services = _compose()["services"]
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["db"]["image"].startswith("timescale/timescaledb:")
    assert "ports" not in services["mosquitto"]  # no plaintext MQTT on the host (issue 12)
    assert services["server"]["ports"] == ["${CITYWATCH_HTTP_PUBLISH:-127.0.0.1:8000}:8000"]
    edges = [name for name in services if name.startswith("edge-")]
    assert len(edges) >= 2
    for name, svc in services.items():
        assert "healthcheck" in svc or name.startswith("edge-"), name
        assert svc.get("restart") == "unless-stopped", name


def test_every_edge_group_covers_the_demo_site() -> None:
    from citywatch.site import load_site

    cfg = load_site(ROOT / "config" / "quynhon.yaml", env={})
    cams: list[str] = []
    for name, svc in _compose()["services"].items():
        if name.startswith("edge-"):
            cmd = svc["command"]
            cams += [cmd[i + 1] for i, part in enumerate(cmd) if part == "--camera"]
    assert sorted(cams) == sorted(c.id for c in cfg.cameras)


def test_referenced_files_exist_and_broker_is_not_anonymous() -> None:
    compose = _compose()
    for svc in compose["services"].values():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / "Dockerfile").exists()
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), src
            elif not src.startswith("${"):
                assert src in compose["volumes"], f"named volume {src} is not declared"
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert "allow_anonymous false" in conf
    assert "password_file" in conf and "acl_file" in conf
    assert (ROOT / "deploy" / "mosquitto" / "acl").exists()


def test_dockerfile_has_both_targets() -> None:
    text = Path(ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "AS server" in text and "AS edge" in text


def test_deployment_leaks_are_closed() -> None:
    """Issue 12, item 10: on main the health check put the server's MQTT password on mosquitto_sub's
    command line, 1883 was published in plaintext, and the server listened on 127.0.0.1 inside its
    container (the published port reached nothing)."""
    services = _compose()["services"]
    check = " ".join(services["mosquitto"]["healthcheck"]["test"])
    command_lines = re.split(r"&&|;|\|", check)
    sub = [c for c in command_lines if re.search(r"(^|\s)mosquitto_sub\s", c)]
    assert sub and all("-P" not in c and "PASSWORD" not in c for c in sub), sub
    assert "umask 077" in check  # the options file it reads is private ...
    # ... and written by printf, a shell builtin (no process of its own, so no command line).
    assert all(c.strip().startswith(("umask", "mkdir", "printf")) for c in command_lines if "PASSWORD" in c)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert "1883" not in str(port), f"{name} publishes plaintext MQTT"
    assert services["server"]["environment"]["CITYWATCH_HTTP_HOST"] == "0.0.0.0"
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert "# listener 8883" in conf or "\nlistener 8883" in conf  # the TLS listener is documented
