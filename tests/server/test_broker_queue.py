"""The broker's queue for our offline session is part of the design: with Mosquitto's default of 1,000
queued QoS 1 messages per offline client, a long server outage loses data; with the deployed limit
(deploy/mosquitto/mosquitto.conf: max_queued_messages 200000) everything published while the server is
down is delivered when it comes back. Runs its own mosquitto so the limits are ours."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.mosquitto import free_port
from tests.server.helpers import Publisher, counts, poll, write_site
from tests.server.server_proc import ServerProcess

pytestmark = pytest.mark.integration
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
N = 1500  # published while the server is down


def start_broker(tmp_path: Path, max_queued: int) -> tuple[subprocess.Popen[bytes], int]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages {max_queued}\nmax_queued_bytes 0\nmax_inflight_messages 100\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=(tmp_path / "mosq.log").open("wb")
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            Publisher("127.0.0.1", port, "probe").close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("mosquitto did not start")


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    proc, port = start_broker(tmp_path, request.param)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("broker", "all_delivered"),
    [pytest.param(200000, True, id="deployed-limit"), pytest.param(1000, False, id="mosquitto-default")],
    indirect=["broker"],
)
def test_messages_published_while_server_is_down(
    broker: int, all_delivered: bool, tmp_path: Path, fresh_db: str, unique: str
) -> None:
    site_id, prefix, cam = f"q{unique}", f"cwq{unique}", f"cam-{unique}"
    server = ServerProcess(
        {
            "DATABASE_URL": fresh_db,
            "MQTT_URL": f"mqtt://127.0.0.1:{broker}",
            "MQTT_CLIENT_ID": f"cw-q-{unique}",
            "CITYWATCH_SITE": str(write_site(tmp_path, site_id, prefix, [cam])),
        },
        tmp_path / "server.log",
    )
    server.start()  # creates the persistent session and its subscription
    server.kill()
    pub = Publisher("127.0.0.1", broker, prefix)
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=3)
    try:
        infos = [pub.send(counts(site_id, cam, i + 1, t0 + timedelta(minutes=i))) for i in range(N)]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        pub.close()
    server.start()
    try:

        def stored() -> int:
            with psycopg.connect(fresh_db) as conn:
                row = conn.execute("SELECT count(*) FROM count_bins WHERE camera_id = %s", (cam,)).fetchone()
            return int(row[0]) if row else 0

        if all_delivered:
            assert poll(stored, lambda v: v >= N, timeout=60) == N
        else:
            got = poll(stored, lambda v: v >= 1000, timeout=60)
            time.sleep(2.0)  # give any (wrongly) surviving messages time to arrive
            got = stored()
            assert 1000 <= got < N, "the broker kept more than its queue limit: the control is broken"
    finally:
        server.stop()
