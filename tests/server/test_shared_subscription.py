"""Two server instances in one MQTT 5 shared-subscription group split the stream; each message is
stored exactly once and both instances do part of the work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from citywatch.site import load_site
from server.db.migrate import migrate
from server.ingest.service import IngestService
from server.metrics import Metrics
from server.settings import Settings
from tests.server.helpers import Publisher, counts, poll, write_site

pytestmark = pytest.mark.integration


def test_two_instances_share_the_stream(
    tmp_path: Path, fresh_db: str, unique: str, mqtt_host_port: tuple[str, int]
) -> None:
    host, port = mqtt_host_port
    site_id, prefix = f"sh{unique}", f"cws{unique}"
    cams = [f"cam-{unique}-{i}" for i in range(4)]
    site = load_site(write_site(tmp_path, site_id, prefix, cams))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, site.site.timezone)
    services = []
    for k in range(2):
        settings = Settings.from_env(
            {"DATABASE_URL": fresh_db, "MQTT_URL": f"mqtt://{host}:{port}",
             "MQTT_CLIENT_ID": f"cw-sh-{unique}-{k}", "MQTT_SHARED_GROUP": f"g{unique}",
             "MQTT_SESSION_EXPIRY_S": "0"}
        )  # fmt: skip
        service = IngestService(settings, site, Metrics())
        service.start()
        services.append(service)
    try:
        for s in services:
            assert s.subscriber.subscribed.wait(10)
            assert s.subscriber.topic_filter == f"$share/g{unique}/{prefix}/v1/{site_id}/+/+"
        pub = Publisher(host, port, prefix)
        n = 100
        t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=5)
        try:
            infos = [
                pub.send(counts(site_id, cams[i % 4], i // 4 + 1, t0 + timedelta(minutes=i // 4)))
                for i in range(n)
            ]
            for info in infos:
                info.wait_for_publish(10)
        finally:
            pub.close()

        def stored() -> int:
            with psycopg.connect(fresh_db) as conn:
                row = conn.execute("SELECT count(*) FROM count_bins").fetchone()
            return int(row[0]) if row else 0

        assert poll(stored, lambda v: v >= n, timeout=30) == n
        per_instance = [s.metrics.stored["counts"] for s in services]
        assert sum(per_instance) == n
        assert all(x > 0 for x in per_instance), per_instance
        with psycopg.connect(fresh_db) as conn:
            assert conn.execute("SELECT count(*) FROM seq_gaps WHERE closed_at IS NULL").fetchone() == (0,)
    finally:
        for s in services:
            s.stop()
