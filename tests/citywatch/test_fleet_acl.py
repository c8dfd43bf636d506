"""Fleet topics under the generated ACL, enforced by a real Mosquitto: only the server writes an
edge's config, each edge reads only its own group's config and announces only as its own group."""

from __future__ import annotations

import queue

import pytest

from citywatch.broker_auth import SERVER_USER, render_acl
from citywatch.site import parse_site
from contract.fleet import announce_topic, config_topic
from tests.citywatch.test_broker_auth import Client, _site, secured
from tests.mosquitto import Broker

__all__ = ["secured"]  # the fixture, imported for its use here


def test_acl_grants_fleet_topics() -> None:
    acl = render_acl(parse_site(_site()), "t.yaml")
    sections = {block.split("\n")[0]: block for block in acl.split("\nuser ")[1:]}
    assert "topic write cwt/config/#" in sections[SERVER_USER]
    assert "topic read cwt/edges/#" in sections[SERVER_USER]
    assert "topic read cwt/config/v1/tsite/grp-a" in sections["edge-grp-a"]
    assert "topic write cwt/edges/v1/tsite/grp-a" in sections["edge-grp-a"]
    assert "grp-b" not in sections["edge-grp-a"]


@pytest.mark.integration
def test_config_topics_confined_to_server_and_own_edge(secured: tuple[Broker, str, dict[str, str]]) -> None:
    broker, prefix, pw = secured
    server = Client(broker.port, SERVER_USER, pw[SERVER_USER], "server")
    edge_a = Client(broker.port, "edge-grp-a", pw["edge-grp-a"], "edge-a")
    edge_b = Client(broker.port, "edge-grp-b", pw["edge-grp-b"], "edge-b")
    cfg_a, cfg_b = config_topic("tsite", "grp-a", prefix), config_topic("tsite", "grp-b", prefix)
    ann_a, ann_b = announce_topic("tsite", "grp-a", prefix), announce_topic("tsite", "grp-b", prefix)
    try:
        for c in (server, edge_a, edge_b):
            assert not c.connected().is_failure
        # Only the server may write configs: retained, so an edge that subscribes later gets them.
        for topic in (cfg_a, cfg_b):
            info = server.client.publish(topic, f"config for {topic}".encode(), qos=1, retain=True)
            info.wait_for_publish(10)
            assert edge_a.publish(topic, b"forged").is_failure
        assert edge_b.publish(cfg_a, b"forged").is_failure

        # An edge subscribing to every config sees only its own group's.
        edge_a.subscribe(f"{prefix}/config/#")
        assert edge_a.messages.get(timeout=10) == (cfg_a, f"config for {cfg_a}".encode())
        with pytest.raises(queue.Empty):
            edge_a.messages.get(timeout=1)

        # Announcements: each edge only as its own group; the server reads them, other edges do not.
        assert not server.subscribe(f"{prefix}/edges/#")[0].is_failure
        edge_b.subscribe(f"{prefix}/edges/#")
        assert edge_a.publish(ann_b, b"forged").is_failure
        assert not edge_a.publish(ann_a, b"hello").is_failure
        assert server.messages.get(timeout=10) == (ann_a, b"hello")
        assert server.messages.empty()
        with pytest.raises(queue.Empty):
            edge_b.messages.get(timeout=1)
        assert server.publish(ann_a, b"forged").is_failure  # the server cannot speak for an edge
    finally:
        for c in (server, edge_a, edge_b):
            c.close()
