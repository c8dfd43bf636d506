"""End to end: a real publisher -> Mosquitto -> `citywatch server run` (a subprocess) -> PostgreSQL.

Exactly once through a SIGKILL mid-stream and through dropped database connections; bad input in
dead letters without stopping ingest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from contract import dump_message, topic_for
from server.db.timescale import ROLLUPS, refresh
from tests.server.helpers import Publisher, counts, heartbeat, poll, write_site
from tests.server.server_proc import ServerProcess

pytestmark = pytest.mark.integration


def q1(dsn: str, query: str, *params: object) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def setup(
    tmp_path: Path, fresh_db: str, unique: str, mqtt_host_port: tuple[str, int]
) -> Iterator[tuple[ServerProcess, Publisher, str, list[str]]]:
    site_id, prefix = f"s{unique}", f"cwt{unique}"
    cams = [f"cam-{unique}-a", f"cam-{unique}-b"]
    site = write_site(tmp_path, site_id, prefix, cams)
    host, port = mqtt_host_port
    server = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://{host}:{port}",
            "MQTT_CLIENT_ID": f"cw-server-{unique}",
            "MQTT_SESSION_EXPIRY_S": "600",
            "CITYWATCH_SITE": str(site),
            "CITYWATCH_BATCH_SIZE": "200",
        },
        tmp_path / "server.log",
    )
    server.start()
    pub = Publisher(host, port, prefix)
    try:
        yield server, pub, site_id, cams
    finally:
        pub.close()
        server.stop()


def stored_bins(dsn: str, cams: list[str]) -> int:
    return int(str(q1(dsn, "SELECT count(*) FROM count_bins WHERE camera_id = ANY(%s)", cams)))


def publish_stream(pub: Publisher, site_id: str, cams: list[str], n: int, t0: datetime, rate: float) -> None:
    """n counts messages per camera, seq 1..n, at about ``rate`` messages/s in total."""
    for i in range(n):
        for cam in cams:
            info = pub.send(counts(site_id, cam, i + 1, t0 + timedelta(minutes=i)))
            info.wait_for_publish(10)
        time.sleep(len(cams) / rate)


def assert_exactly_once(dsn: str, cams: list[str], n: int) -> None:
    assert stored_bins(dsn, cams) == n * len(cams)
    assert q1(dsn, "SELECT count(*) FROM processed_messages WHERE camera_id = ANY(%s)", cams) == n * len(cams)
    # each message carries 3 cars on L1 and 5 motorcycles on L2
    assert q1(dsn, "SELECT sum(count) FROM counts WHERE camera_id = ANY(%s)", cams) == 8 * n * len(cams)
    assert q1(dsn, "SELECT sum(count) FROM counts_1d WHERE camera_id = ANY(%s)", cams) == 8 * n * len(cams)
    assert q1(dsn, "SELECT count(*) FROM seq_gaps WHERE camera_id = ANY(%s) AND closed_at IS NULL", cams) == 0
    assert q1(dsn, "SELECT max(max_seq) FROM camera_seq WHERE camera_id = ANY(%s)", cams) == n


def test_exactly_once_when_server_is_killed_mid_stream(
    setup: tuple[ServerProcess, Publisher, str, list[str]], fresh_db: str
) -> None:
    server, pub, site_id, cams = setup
    n = 300  # per camera; under Mosquitto's default 1,000-message offline queue on the shared broker
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    publisher = threading.Thread(target=publish_stream, args=(pub, site_id, cams, n, t0, 400.0))
    publisher.start()
    poll(lambda: stored_bins(fresh_db, cams), lambda v: v >= 100, timeout=30)
    server.kill()  # SIGKILL: no clean shutdown, batches in flight are lost from memory
    killed_at = stored_bins(fresh_db, cams)
    time.sleep(0.5)
    server.start()
    publisher.join(60)
    got = poll(lambda: stored_bins(fresh_db, cams), lambda v: v >= 2 * n, timeout=60)
    assert killed_at < 2 * n, "the kill happened after everything was stored: the test proved nothing"
    assert got == 2 * n, server.log_tail()
    time.sleep(1.0)  # a late duplicate would show now
    assert_exactly_once(fresh_db, cams, n)


def test_exactly_once_when_database_connections_drop(
    setup: tuple[ServerProcess, Publisher, str, list[str]], fresh_db: str
) -> None:
    server, pub, site_id, cams = setup
    n = 400
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=2)
    publisher = threading.Thread(target=publish_stream, args=(pub, site_id, cams, n, t0, 300.0))
    publisher.start()
    db_name = fresh_db.rsplit("/", 1)[1]
    for k in range(3):
        target = 150 * (k + 1)

        def reached(v: int, t: int = target) -> bool:
            return v >= t

        poll(lambda: stored_bins(fresh_db, cams), reached, timeout=30)
        with psycopg.connect(fresh_db, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = 'citywatch-ingest'",
                (db_name,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
    publisher.join(60)
    got = poll(lambda: stored_bins(fresh_db, cams), lambda v: v >= 2 * n, timeout=60)
    assert got == 2 * n, server.log_tail()
    assert_exactly_once(fresh_db, cams, n)
    assert "citywatch_ingest_db_errors_total 0" not in server.metrics()


def test_bad_input_goes_to_dead_letters_and_ingest_continues(
    setup: tuple[ServerProcess, Publisher, str, list[str]], fresh_db: str, mqtt_host_port: tuple[str, int]
) -> None:
    server, pub, site_id, cams = setup
    cam = cams[0]
    now = datetime.now(UTC)
    topic = topic_for(site_id, cam, "counts", pub.prefix)
    good = json.loads(dump_message(counts(site_id, cam, 1, now - timedelta(minutes=2))))
    bad: dict[str, bytes] = {
        "json": b"{this is not json",
        "version": json.dumps({**good, "schema_version": 9}).encode(),
        "schema": json.dumps({k: v for k, v in good.items() if k != "frames"}).encode(),
        "future": json.dumps({**good, "msg_id": "3f1e6b7e-0000-4000-8000-000000000001",
                              "ts": (now + timedelta(minutes=10)).isoformat()}).encode(),
        "too_old": json.dumps({**good, "msg_id": "3f1e6b7e-0000-4000-8000-000000000002",
                               "ts": (now - timedelta(days=3650)).isoformat()}).encode(),
    }  # fmt: skip
    for payload in bad.values():
        pub.raw(topic, payload).wait_for_publish(10)
    unknown = counts(site_id, "cam-not-in-site", 1, now - timedelta(minutes=2))
    pub.raw(
        topic_for(site_id, "cam-not-in-site", "counts", pub.prefix), dump_message(unknown)
    ).wait_for_publish(10)
    # 10 MB: Mosquitto on its defaults passes it on; the server must refuse it either way.
    big = Publisher(*mqtt_host_port, pub.prefix)
    try:
        big.raw(topic, b"{" + b" " * (10 * 1024 * 1024) + b"}").wait_for_publish(30)
    finally:
        big.close()
    first = counts(site_id, cam, 1, now - timedelta(minutes=2))
    pub.send(first).wait_for_publish(10)
    pub.send(first).wait_for_publish(10)  # a duplicate
    pub.send(heartbeat(site_id, cam, 2)).wait_for_publish(10)
    reasons = ["json", "version", "schema", "future", "too_old", "unknown_camera", "size"]

    def dead() -> dict[str, int]:
        with psycopg.connect(fresh_db) as conn:
            rows = conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    got = poll(dead, lambda d: all(d.get(r) == 1 for r in reasons), timeout=30)
    assert {r: got.get(r) for r in reasons} == dict.fromkeys(reasons, 1)
    poll(lambda: stored_bins(fresh_db, [cam]), lambda v: v >= 1)
    assert stored_bins(fresh_db, [cam]) == 1
    assert q1(fresh_db, "SELECT count(*) FROM heartbeats WHERE camera_id = %s", cam) == 1
    assert (
        q1(fresh_db, "SELECT max(payload_size) FROM dead_letters WHERE reason = 'size'")
        == 10 * 1024 * 1024 + 2
    )
    metrics = poll(server.metrics, lambda t: "citywatch_ingest_duplicates_total 1" in t)
    assert 'citywatch_ingest_dead_letters_total{reason="size"} 1' in metrics
    assert "citywatch_ingest_duplicates_total 1" in metrics
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "database": "ok"}


def test_timescale_late_and_resent_bins_reach_the_aggregates(
    tmp_path: Path, fresh_ts_db: str, unique: str, mqtt_host_port: tuple[str, int]
) -> None:
    """`citywatch server run` on TimescaleDB: after the aggregates are materialized, late bins (and a
    re-sent bin, which adds nothing) published over MQTT show in the hourly and daily aggregates."""
    site_id, prefix = f"s{unique}", f"cwt{unique}"
    cam = f"cam-{unique}"
    site = write_site(tmp_path, site_id, prefix, [cam])
    host, port = mqtt_host_port
    env = {
        "DATABASE_URL": fresh_ts_db, "MQTT_URL": f"mqtt://{host}:{port}", "MQTT_CLIENT_ID": f"cw-{unique}",
        "MQTT_SESSION_EXPIRY_S": "600", "CITYWATCH_SITE": str(site), "CITYWATCH_TIMESCALE": "on",
        "CITYWATCH_ALERTING": "false",
    }  # fmt: skip
    server = ServerProcess(env, tmp_path / "server.log")
    server.start()
    pub = Publisher(host, port, prefix)
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    try:
        for i in range(3):
            pub.send(counts(site_id, cam, i + 1, t0 + timedelta(minutes=i))).wait_for_publish(10)
        poll(lambda: stored_bins(fresh_ts_db, [cam]), lambda v: v == 3)
        with psycopg.connect(fresh_ts_db, autocommit=True) as conn:
            for view in ROLLUPS:
                # No policy job may refresh meanwhile: only the server's own late refresh can pass.
                conn.execute("SELECT remove_continuous_aggregate_policy(%s)", (view,))
                refresh(conn, view)  # t0's hour and day are now below every watermark
        late = [counts(site_id, cam, 10 + i, t0 + timedelta(minutes=10 + i)) for i in range(2)]
        resent = counts(site_id, cam, 20, t0, {("L1", "north", "car"): 100})  # same bin, new id
        for m in [*late, resent]:
            pub.send(m).wait_for_publish(10)
        want = 8 * 5  # five bins of 3 + 5
        got = poll(
            lambda: (
                q1(fresh_ts_db, "SELECT sum(count) FROM counts_1h WHERE camera_id = %s", cam),
                q1(fresh_ts_db, "SELECT sum(total) FROM count_bins_1d WHERE camera_id = %s", cam),
            ),
            lambda v: v == (want, want),
            timeout=30,
        )
        assert got == (want, want), (got, server.log_tail())
        assert q1(fresh_ts_db, "SELECT sum(count) FROM counts WHERE camera_id = %s", cam) == want
    finally:
        pub.close()
        server.stop()
