"""Zero-loss fault harness: real processes, real faults, every produced bin accounted for.

    python bench/faults.py --json            # full run: every fault several times
    python bench/faults.py --short --json    # CI: every fault at least once (about 2 minutes)

What runs (all private to the run, in one temp folder removed at the end):

* Mosquitto on its own port with persistence (autosave every second, as ``tests/mosquitto.py``);
* a PostgreSQL cluster of its own (``initdb`` + ``pg_ctl``, run as the ``postgres`` user when we are
  root), so the harness can restart it;
* the real server (``citywatch server run``) as a subprocess;
* edge processes: this file run as ``faults.py edge ...``: the real edge delivery path (the SQLite
  ``edge.outbox.Outbox`` with its per-camera sequence numbers and one ``edge.publisher.CameraPublisher``
  per camera) fed with synthetic count bins at a fixed rate. Bin ``seq`` of a camera starts at
  ``base + seq * bin`` and its cells are a function of (camera, seq), so what was produced is exactly
  ``1..last_seq`` of the outbox's ``seqs`` table and its content can be recomputed;
* a TCP proxy (in this process) between the edges and the broker that can cut every connection and
  refuse new ones.

Faults (each several times in the full run, at least once with ``--short``): broker SIGKILL + restart,
server SIGKILL while its writer has a transaction open + restart, PostgreSQL restart (``-m immediate``
and ``-m fast`` alternately), edge SIGKILL + restart on the same outbox, network cut + restore. One more
camera dies for good (its edge is SIGKILLed and never restarted): the server must show it offline (the
last will) with no bins after its death, not zero-traffic bins.

At the end the edges stop producing, the harness waits until every outbox is empty and the database
stops changing, then compares per camera and bin what the edges produced with what the database holds.
Exit status 1 when anything is lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import free_port

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN_S = 60
CELLS = (
    ("L1", "north", "car"),
    ("L1", "south", "motorcycle"),
    ("L2", "east", "truck"),
    ("L2", "west", "bus"),
)
FAULT_KINDS = ("network_cut", "edge_kill", "broker_kill", "server_kill", "postgres_restart")
#: Opt-in (``--compound``): broker SIGKILL while the server is down, so queued messages exist only in the
#: broker's memory and its last autosave.
COMPOUND = "broker_kill_while_server_down"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class HarnessError(RuntimeError):
    """A process of the harness did not start or stop as it should."""


# -- synthetic content: what an edge produces is a pure function of (camera, seq) -------------------
def cell_counts(camera_id: str, seq: int) -> list[tuple[str, str, str, int]]:
    """The non-zero cells of bin ``seq`` of a camera (one cell is zero every third bin)."""
    salt = sum(camera_id.encode())
    out = []
    for i, (line, direction, cls) in enumerate(CELLS):
        n = (seq * 7 + i * 3 + salt) % 9
        if n or i != seq % 3:
            out.append((line, direction, cls, n or 1))
    return out


def bin_start(base: datetime, seq: int) -> datetime:
    return base + timedelta(seconds=BIN_S * seq)


# -- processes --------------------------------------------------------------------------------------
def wait_port(port: int, up: bool = True, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise HarnessError(f"port {port} did not {'open' if up else 'close'}")


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in its own process group (killed as a group), output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL, wait: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


class Broker:
    """Mosquitto with persistence on its own port; SIGKILL loses what it had not saved yet."""

    def __init__(self, workdir: Path, max_queued: int = 200_000) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        # As root Mosquitto would drop to the `mosquitto` user and could not save into our folder.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.dir}/\nautosave_interval 1\nmax_queued_messages {max_queued}\n"
            f"max_queued_bytes 0\nmax_inflight_messages 100\n{user}",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = spawn([MOSQUITTO, "-c", str(self.conf)], self.dir / "mosquitto.log")
        wait_port(self.port)

    def kill(self) -> None:
        kill_group(self.proc)
        self.proc = None
        wait_port(self.port, up=False)

    def stop(self) -> None:
        kill_group(self.proc, signal.SIGTERM)
        self.proc = None


class Postgres:
    """A private cluster (Debian's initdb/pg_ctl) that the harness may restart."""

    def __init__(self, workdir: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise HarnessError("no /usr/lib/postgresql/*/bin/pg_ctl: install PostgreSQL")
        self.bin = bins[-1].parent
        self.dir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:  # the server refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise HarnessError(f"{args[0]} failed: {res.stdout.decode()[-800:]} {res.stderr.decode()[-800:]}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        # fsync=off: the faults here kill processes, not the machine; written WAL survives in the page
        # cache, and the 2-core machine is spared the flushes.
        opts = (
            f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
            "fsync = off\nshared_buffers = 64MB\nmax_connections = 50\nlogging_collector = off\n"
        )
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.write(opts)

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w", "-t", "60", "start"
        )

    def restart(self, mode: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w", "-t", "60",
                  "-m", mode, "restart")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(HarnessError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", "immediate", "stop")

    def pids(self) -> list[int]:
        """The postmaster and its children (for RSS)."""
        try:
            master = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        kids = Path(f"/proc/{master}/task/{master}/children")
        try:
            return [master, *(int(p) for p in kids.read_text().split())]
        except OSError:
            return [master]


class Server:
    """``citywatch server run`` as a subprocess; ready when ``/healthz`` answers 200."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "CITYWATCH_HTTP_PORT": str(self.port)}
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        exe = Path(sys.executable).with_name("citywatch")
        self.proc = spawn([str(exe), "server", "run"], self.log, self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"server exited with {self.proc.returncode}: {self.tail()}")
            if http_status(f"http://127.0.0.1:{self.port}/healthz") == 200:
                return
            time.sleep(0.2)
        raise HarnessError(f"server did not come up: {self.tail()}")

    def kill(self) -> None:
        kill_group(self.proc)

    def stop(self) -> None:
        kill_group(self.proc, signal.SIGTERM)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def http_status(url: str) -> int:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=2.0) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class Proxy:
    """A TCP proxy on its own event-loop thread; ``cut`` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._thread.start()
        self.restore()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._conns |= {writer, up_w}
        try:
            await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))
        finally:
            self._conns -= {writer, up_w}

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._conns):
            w.transport.abort()  # RST both ways: nothing in flight gets through
        self._conns.clear()

    def restore(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class Edge:
    """One synthetic edge process (``faults.py edge``) and its outbox file."""

    edge_id: str
    cameras: list[str]
    outbox: Path
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    dead: bool = False
    killed_at: datetime | None = None

    def start(self) -> None:
        self.proc = spawn([sys.executable, str(Path(__file__).resolve()), "edge", *self.args], self.log)

    def kill(self) -> None:
        kill_group(self.proc)


def outbox_state(path: Path) -> tuple[dict[str, int], dict[str, list[int]]]:
    """(last seq per camera, seqs of the counts messages still waiting) read from an outbox file."""
    if not path.exists():
        return {}, {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        seqs = {str(c): int(s) for c, s in db.execute("SELECT camera_id, seq FROM seqs")}
        waiting: dict[str, list[int]] = {}
        for cam, payload in db.execute("SELECT camera_id, payload FROM outbox WHERE kind = 'counts'"):
            waiting.setdefault(str(cam), []).append(int(json.loads(payload)["seq"]))
        return seqs, waiting
    finally:
        db.close()


def outbox_depth(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


#: The lines and directions of :data:`CELLS` (the server dead-letters counts naming a line or direction
#: its site config does not know).
LINES_YAML = (
    "    lines:\n"
    "      - {id: L1, points: [[0.0, 0.5], [1.0, 0.5]], directions: {positive: north, negative: south}}\n"
    "      - {id: L2, points: [[0.5, 0.0], [0.5, 1.0]], directions: {positive: east, negative: west}}\n"
)


def write_site(path: Path, site_id: str, prefix: str, cameras: list[str], extra: str = "") -> Path:
    cams = "".join(
        f'  - id: {c}\n    name: "{c}"\n    location: {{lat: 13.77, lon: 109.22}}\n'
        f"    source: {{kind: webcam, index: 0}}\n{LINES_YAML}"
        for c in cameras
    )
    path.write_text(
        f"site:\n  id: {site_id}\n  name: faults\n  timezone: Asia/Ho_Chi_Minh\n"
        f"  center: {{lat: 13.77, lon: 109.22}}\n  bin_seconds: {BIN_S}\n"
        f"mqtt_prefix: {prefix}\ncameras:\n{cams}{extra}",
        encoding="utf-8",
    )
    return path


# -- database ---------------------------------------------------------------------------------------
def query(url: str, sql: Any, params: Any = None) -> list[tuple[Any, ...]]:
    """One query on a fresh connection (the harness restarts PostgreSQL under its own feet)."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def try_query(url: str, sql: Any, params: Any = None) -> list[tuple[Any, ...]] | None:
    import psycopg  # noqa: PLC0415

    try:
        return query(url, sql, params)
    except psycopg.Error:
        return None


def stored_bins(url: str) -> int | None:
    rows = try_query(url, "SELECT count(*) FROM count_bins")
    return int(rows[0][0]) if rows else None


def wait_for_subscription(db_url: str, mqtt_port: int, site_id: str, prefix: str, camera: str) -> None:
    """Publish a status probe until the server has stored it: the subscription is live."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    from contract import StatusMessage, StreamState, dump_message, topic_for  # noqa: PLC0415

    probe = StatusMessage(
        msg_id=uuid.uuid4(), site_id=site_id, edge_id="probe", camera_id=camera, seq=0,
        ts=datetime.now(UTC), state=StreamState.ONLINE, reason="subscription probe",
    )  # fmt: skip
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            client.publish(topic_for(site_id, camera, "status", prefix), dump_message(probe), qos=1)
            time.sleep(0.5)
            rows = try_query(db_url, "SELECT 1 FROM camera_status WHERE msg_id = %s", (probe.msg_id,))
            if rows:
                return
        raise HarnessError("the server never stored the subscription probe")
    finally:
        client.loop_stop()
        client.disconnect()


# -- the edge child ---------------------------------------------------------------------------------
def edge_main(argv: list[str]) -> int:
    """``faults.py edge``: synthetic bins through the real outbox and per-camera publishers."""
    p = argparse.ArgumentParser(prog="faults.py edge")
    p.add_argument("--edge-id", required=True)
    p.add_argument("--camera", action="append", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--mqtt-port", type=int, required=True)
    p.add_argument("--outbox", required=True)
    p.add_argument("--rate", type=float, required=True, help="bins per second per camera")
    p.add_argument("--base", required=True, help="ISO time of seq 0")
    p.add_argument("--stop-file", required=True, help="stop producing (keep delivering) once it exists")
    a = p.parse_args(argv)

    from contract import CountsMessage, DirectionCount, StreamState, topic_for  # noqa: PLC0415
    from contract.messages import Envelope  # noqa: PLC0415
    from edge.emit import Emitter  # noqa: PLC0415
    from edge.outbox import Outbox  # noqa: PLC0415
    from edge.publisher import CameraPublisher  # noqa: PLC0415
    from edge.settings import MqttSettings  # noqa: PLC0415

    base = datetime.fromisoformat(a.base)
    outbox = Outbox(a.outbox)
    mqtt_settings = MqttSettings(host="127.0.0.1", port=a.mqtt_port, keepalive=10)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pubs: dict[str, CameraPublisher] = {}
    for cam in a.camera:
        emitter = Emitter(a.site, a.edge_id, cam, a.prefix, outbox)
        now = datetime.now(UTC)
        pub = CameraPublisher(
            outbox, mqtt_settings, a.site, a.edge_id, cam, a.prefix,
            offline_status=emitter.status(now, state=StreamState.OFFLINE, reason="connection lost"),
        )  # fmt: skip
        pub.set_status(emitter.status(now, state=StreamState.ONLINE, reason="synthetic"))
        pub.start()
        pubs[cam] = pub

    def builder(cam: str) -> Callable[[int], Envelope]:
        def build(seq: int) -> Envelope:
            start = bin_start(base, seq)
            return CountsMessage(
                msg_id=uuid.uuid4(), site_id=a.site, edge_id=a.edge_id, camera_id=cam, seq=seq,
                ts=datetime.now(UTC), bin_start=start, bin_end=start + timedelta(seconds=BIN_S),
                lines=[DirectionCount(line_id=ln, direction=d, cls=c, count=n)
                       for ln, d, c, n in cell_counts(cam, seq)],
                frames=BIN_S * 10, fps=10.0,
            )  # fmt: skip

        return build

    builds = {cam: builder(cam) for cam in a.camera}
    topics = {cam: topic_for(a.site, cam, "counts", a.prefix) for cam in a.camera}
    period = 1.0 / a.rate
    next_due = time.monotonic()
    stop_file = Path(a.stop_file)
    while not stop.is_set():
        if stop_file.exists():
            stop.wait(0.2)
            continue
        for cam in a.camera:
            outbox.put(cam, topics[cam], builds[cam])
            pubs[cam].wake()
        next_due += period
        stop.wait(max(0.0, next_due - time.monotonic()))
    for cam, pub in pubs.items():
        pub.stop(Emitter(a.site, a.edge_id, cam, a.prefix, outbox).status(
            datetime.now(UTC), state=StreamState.OFFLINE, reason="worker stopped"))  # fmt: skip
    outbox.close()
    return 0


# -- the run ----------------------------------------------------------------------------------------
@dataclass
class Plan:
    rounds: int
    edges: int
    cameras_per_edge: int
    rate: float
    hold_s: float
    settle_s: float
    fault_log: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="cw-faults-"))
    os.chmod(tmp, 0o755)  # the postgres user must reach its data folder below
    try:
        yield tmp
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def wait_progress(db_url: str, before: int | None, timeout: float = 60.0) -> float | None:
    """Seconds until the database holds more bins than ``before`` (None: no progress in time)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        now = stored_bins(db_url)
        if now is not None and before is not None and now > before:
            return round(time.monotonic() - t0, 2)
        if before is None and now is not None:
            before = now
        time.sleep(0.25)
    return None


def produced_now(edges: list[Edge]) -> int:
    return sum(sum(outbox_state(e.outbox)[0].values()) for e in edges)


def wait_caught_up(db_url: str, edges: list[Edge], timeout: float = 90.0) -> float | None:
    """Seconds until the database holds every bin the edges had produced when the fault was undone
    (None: not within ``timeout``): the time the system needs to recover from the fault."""
    t0 = time.monotonic()
    target = produced_now(edges)
    cams = [c for e in edges for c in e.cameras]
    while time.monotonic() - t0 < timeout:
        rows = try_query(db_url, "SELECT count(*) FROM count_bins WHERE camera_id = ANY(%s)", (cams,))
        if rows and int(rows[0][0]) >= target:
            return round(time.monotonic() - t0, 2)
        time.sleep(0.25)
    return None


def mid_batch(db_url: str, timeout: float = 5.0) -> bool:
    """Wait until the ingest writer has a statement or transaction open (True), or time out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = try_query(
            db_url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'citywatch-ingest' "
            "AND (state = 'active' OR state LIKE 'idle in transaction%%')",
        )
        if rows and rows[0][0]:
            return True
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = (
        Plan(rounds=1, edges=3, cameras_per_edge=2, rate=15.0, hold_s=2.5, settle_s=3.0)
        if args.short
        else Plan(rounds=args.rounds, edges=4, cameras_per_edge=2, rate=25.0, hold_s=4.0, settle_s=5.0)
    )
    token = uuid.uuid4().hex[:8]
    site_id, prefix = f"f{token}", f"cwf{token}"
    base = (datetime.now(UTC) - timedelta(days=300)).replace(second=0, microsecond=0)
    t_start = time.monotonic()
    with workspace(args.keep) as tmp:
        broker = Broker(tmp / "broker")
        pg = Postgres(tmp / "pg")
        proxy: Proxy | None = None
        server: Server | None = None
        edges: list[Edge] = []
        try:
            pg.init()
            pg.start()
            broker.start()
            proxy = Proxy(broker.port)
            cams_by_edge = {
                f"edge-{i}": [f"cam-{i}-{j}" for j in range(plan.cameras_per_edge)] for i in range(plan.edges)
            }
            cams_by_edge["edge-dead"] = ["cam-dead"]
            all_cams = [c for cs in cams_by_edge.values() for c in cs]
            site = write_site(tmp / "site.yaml", site_id, prefix, all_cams)
            server = Server(tmp, {
                "DATABASE_URL": pg.url, "MQTT_URL": broker.url, "MQTT_CLIENT_ID": f"cw-faults-{token}",
                "CITYWATCH_SITE": str(site), "CITYWATCH_TIMESCALE": "off", "CITYWATCH_DB_WAIT_S": "60",
            })  # fmt: skip
            server.start()
            wait_for_subscription(pg.url, broker.port, site_id, prefix, all_cams[0])
            stop_file = tmp / "stop-producing"
            for edge_id, cams in cams_by_edge.items():
                e = Edge(edge_id, cams, tmp / "edges" / f"{edge_id}.sqlite3", [], tmp / f"{edge_id}.log")
                e.args = [
                    "--edge-id", edge_id, "--site", site_id, "--prefix", prefix,
                    "--mqtt-port", str(proxy.port), "--outbox", str(e.outbox), "--rate", str(plan.rate),
                    "--base", base.isoformat(), "--stop-file", str(stop_file),
                    *(x for c in cams for x in ("--camera", c)),
                ]  # fmt: skip
                e.start()
                edges.append(e)
            live = [e for e in edges if e.edge_id != "edge-dead"]
            dead = next(e for e in edges if e.edge_id == "edge-dead")
            if wait_progress(pg.url, 0, 60) is None:
                raise HarnessError(f"nothing reached the database: {server.tail()}")
            time.sleep(plan.settle_s)

            counts = dict.fromkeys(FAULT_KINDS, 0)
            schedule = [k for _ in range(plan.rounds) for k in FAULT_KINDS]
            if args.compound:
                counts[COMPOUND] = 0
                schedule.append(COMPOUND)
            for n, kind in enumerate(schedule):
                if n == 2 and not dead.dead:
                    dead.kill()  # a camera that dies for good
                    dead.dead, dead.killed_at = True, datetime.now(UTC)
                info: dict[str, Any] = {"kind": kind, "at_s": round(time.monotonic() - t_start, 1)}
                if kind == "network_cut":
                    proxy.cut()
                    time.sleep(plan.hold_s)
                    proxy.restore()
                elif kind == "edge_kill":
                    victim = live[counts[kind] % len(live)]
                    info["edge"] = victim.edge_id
                    victim.kill()
                    time.sleep(plan.hold_s / 2)
                    victim.start()
                elif kind == "broker_kill":
                    broker.kill()
                    time.sleep(plan.hold_s)
                    broker.start()
                elif kind == "server_kill":
                    info["mid_transaction"] = mid_batch(pg.url)
                    server.kill()
                    time.sleep(plan.hold_s / 2)
                    server.start()
                elif kind == COMPOUND:
                    # The broker holds the server's queue alone (server down), then dies before it saved.
                    server.kill()
                    time.sleep(plan.hold_s)
                    broker.kill()
                    time.sleep(1.0)
                    broker.start()
                    server.start()
                elif kind == "postgres_restart":
                    info["mode"] = ("immediate", "fast")[counts[kind] % 2]
                    pg.restart(info["mode"])
                counts[kind] += 1
                info["caught_up_s"] = wait_caught_up(pg.url, live)
                plan.fault_log.append(info)
                time.sleep(plan.settle_s)

            # Drain: stop producing, wait for empty outboxes and a database that no longer changes.
            stop_file.touch()
            t_drain = time.monotonic()
            last, stable_since = -1, time.monotonic()
            while time.monotonic() - t_drain < args.drain_timeout:
                depth = sum(outbox_depth(e.outbox) for e in live)
                now_bins = stored_bins(pg.url) or -1
                if now_bins != last:
                    last, stable_since = now_bins, time.monotonic()
                if depth == 0 and time.monotonic() - stable_since > 3.0:
                    break
                time.sleep(0.5)
            drain_s = round(time.monotonic() - t_drain, 1)
            for e in live:
                kill_group(e.proc, signal.SIGTERM)
            result = verify(pg.url, edges, base)
            result["faults_injected"] = counts
            result["fault_log"] = plan.fault_log
            result["drain_s"] = drain_s
            result["dead_camera"] = dead_camera_report(pg.url, dead, result)
            result["config"] = {
                "short": args.short, "edges": len(live), "cameras": sum(len(e.cameras) for e in live) + 1,
                "rate_bins_per_s_per_camera": plan.rate, "cells_per_bin": len(CELLS),
            }  # fmt: skip
            result["seconds"] = round(time.monotonic() - t_start, 1)
            server_log = server.tail(200_000)
            result["server_log_errors"] = sum(1 for ln in server_log.splitlines() if " ERROR " in ln)
            return result
        finally:
            for e in edges:
                kill_group(e.proc)
            if server is not None:
                server.stop()
            if proxy is not None:
                proxy.close()
            broker.stop()
            pg.stop()


def verify(db_url: str, edges: list[Edge], base: datetime) -> dict[str, Any]:
    """Compare, per camera and bin, what the edges produced with what the database holds."""
    from psycopg import sql  # noqa: PLC0415

    per_cam: dict[str, dict[str, Any]] = {}
    bins = query(db_url, "SELECT camera_id, seq, bin_start, total FROM count_bins")
    cells = query(db_url, "SELECT camera_id, bin_start, count(*), sum(count) FROM counts GROUP BY 1, 2")
    processed = dict(query(db_url, "SELECT camera_id, count(*) FROM processed_messages "
                                   "WHERE kind = 'counts' GROUP BY 1"))  # fmt: skip
    rollups = {
        t: dict(
            query(
                db_url, sql.SQL("SELECT camera_id, sum(count) FROM {} GROUP BY 1").format(sql.Identifier(t))
            )
        )
        for t in ("counts_15m", "counts_1h", "counts_1d")
    }
    raw_sum = dict(query(db_url, "SELECT camera_id, sum(count) FROM counts GROUP BY 1"))
    bin_rollup = dict(query(db_url, "SELECT camera_id, sum(n_bins) FROM count_bins_1d GROUP BY 1"))
    gaps = query(db_url, "SELECT camera_id, first_seq, last_seq, closed_at IS NOT NULL FROM seq_gaps")
    dead_letters = query(db_url, "SELECT reason, count(*) FROM dead_letters GROUP BY 1")
    by_cam_bins: dict[str, dict[int, tuple[datetime, int]]] = {}
    for cam, seq, start, total in bins:
        by_cam_bins.setdefault(cam, {})[int(seq)] = (start, int(total))
    cells_by: dict[tuple[str, datetime], tuple[int, int]] = {(c, s): (int(n), int(t)) for c, s, n, t in cells}
    totals = {"produced": 0, "stored": 0, "lost": 0, "duplicates": 0, "mismatched": 0, "stranded": 0}
    for e in edges:
        last_seq, waiting = outbox_state(e.outbox)
        for cam in e.cameras:
            produced = last_seq.get(cam, 0)
            got = by_cam_bins.get(cam, {})
            # Left in the dead edge's outbox and not stored (with end-to-end confirmation, a row
            # can be stored and still there: its confirmation came after the edge died).
            stranded = {s for s in waiting.get(cam, []) if s not in got} if e.dead else set()
            missing = [s for s in range(1, produced + 1) if s not in got and s not in stranded]
            mismatched, dup_cells, expected_sum = 0, 0, 0
            for s in range(1, produced + 1):
                want = cell_counts(cam, s)
                expected_sum += sum(n for *_, n in want) if s in got else 0
                if s not in got:
                    continue
                start, total = got[s]
                if start != bin_start(base, s) or total != sum(n for *_, n in want):
                    mismatched += 1
                n_rows, n_sum = cells_by.get((cam, start), (0, 0))
                if n_rows > len(want) or n_sum > sum(n for *_, n in want):
                    dup_cells += 1
                elif n_rows < len(want) or n_sum < sum(n for *_, n in want):
                    mismatched += 1
            extra_bins = len([s for s in got if s > produced or s < 1])
            extra_ids = max(0, int(processed.get(cam, 0)) - produced)
            rollup_excess = {t: int(r.get(cam, 0)) - int(raw_sum.get(cam, 0)) for t, r in rollups.items()}
            dups = dup_cells + extra_bins + extra_ids + sum(1 for v in rollup_excess.values() if v > 0)
            mismatched += sum(1 for v in rollup_excess.values() if v < 0)
            mismatched += int(raw_sum.get(cam, 0)) < expected_sum
            stored = len([s for s in got if 1 <= s <= produced])
            per_cam[cam] = {
                "edge": e.edge_id, "produced": produced, "stored": stored, "lost": len(missing),
                "lost_seqs": missing[:20], "duplicates": dups, "mismatched": mismatched,
                "stranded_on_dead_edge": len(stranded), "raw_count_sum": int(raw_sum.get(cam, 0)),
                "expected_count_sum": expected_sum, "rollup_minus_raw": rollup_excess,
                "rollup_bins_1d": int(bin_rollup.get(cam, 0)), "processed_msgs": int(processed.get(cam, 0)),
            }  # fmt: skip
            totals["produced"] += produced
            totals["stored"] += stored
            totals["lost"] += len(missing)
            totals["duplicates"] += dups
            totals["mismatched"] += mismatched
            totals["stranded"] += len(stranded)
    return {
        **totals,
        "per_camera": per_cam,
        "seq_gaps": [
            {"camera": c, "first_seq": int(f), "last_seq": int(last), "closed": bool(closed)}
            for c, f, last, closed in gaps
        ],
        "dead_letters": {str(r): int(n) for r, n in dead_letters},
    }


def dead_camera_report(db_url: str, dead: Edge, result: dict[str, Any]) -> dict[str, Any]:
    """The camera that died: offline (its last will) on the server, and no bins after its death."""
    cam = dead.cameras[0]
    live = query(db_url, "SELECT state, state_reason FROM camera_live WHERE camera_id = %s", (cam,))
    offline = query(
        db_url,
        "SELECT count(*) FROM camera_status WHERE camera_id = %s AND state = 'offline' "
        "AND reason = 'connection lost'",
        (cam,),
    )
    after = query(
        db_url, "SELECT count(*), max(received_at) FROM count_bins WHERE camera_id = %s AND received_at > %s",
        (cam, (dead.killed_at or datetime.now(UTC)) + timedelta(seconds=5)),
    )  # fmt: skip
    last_bin = query(db_url, "SELECT max(received_at), max(seq) FROM count_bins WHERE camera_id = %s", (cam,))
    state = live[0][0] if live else None
    cam_info = result["per_camera"].get(cam, {})
    return {
        "camera": cam,
        "killed_at": dead.killed_at.isoformat() if dead.killed_at else None,
        "last_bin_received_at": last_bin[0][0].isoformat() if last_bin and last_bin[0][0] else None,
        "last_seq_stored": int(last_bin[0][1]) if last_bin and last_bin[0][1] is not None else None,
        "live_state": state,
        "offline_will_rows": int(offline[0][0]),
        "bins_received_after_death": int(after[0][0]),
        "produced": cam_info.get("produced"),
        "stranded_in_its_outbox": cam_info.get("stranded_on_dead_edge"),
        "gap_recorded": bool(state == "offline" and offline[0][0] > 0 and after[0][0] == 0),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["edge"]:
        return edge_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--short", action="store_true", help="every fault once (CI)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all faults (full run)")
    p.add_argument("--drain-timeout", type=float, default=180.0)
    p.add_argument("--keep", action="store_true", help="keep the temp folder (logs) for inspection")
    p.add_argument("--compound", action="store_true", help=f"also inject {COMPOUND} (once, at the end)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args(argv)

    def _term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks: nothing stray

    signal.signal(signal.SIGTERM, _term)
    result = run(args)
    ok = (
        result["lost"] == 0
        and result["duplicates"] == 0
        and result["mismatched"] == 0
        and result["produced"] > 0
        and all(result["faults_injected"].values())
        and result["dead_camera"]["gap_recorded"]
    )
    result["ok"] = ok
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(f"produced {result['produced']} stored {result['stored']} lost {result['lost']} "
              f"duplicates {result['duplicates']} faults {result['faults_injected']} ok {ok}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
