"""``citywatch demo``: the whole system on the Quy Nhơn demo site, on one machine, with one command.

With nothing configured it starts a private MQTT broker (the Mosquitto binary on a free port of
127.0.0.1 with a password file and ACL written for the run, no anonymous access; or, where Mosquitto
is not installed, the pure-Python amqtt broker, anonymous on 127.0.0.1 only) and an embedded
PostgreSQL (``pgserver``, a pip-installed server kept under ``.demo/``); ``MQTT_URL`` /
``DATABASE_URL`` point it at real ones instead. Then it runs the server (which migrates) and an edge
worker on the sample clips, looping, prints the URLs and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from citywatch.assets import AssetError, fetch, read_manifest
from citywatch.broker_auth import SERVER_USER, render_acl, render_passwd
from citywatch.site import ConfigError, FileSource, SiteConfig, load_site
from contract.topics import MAJOR

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


class DemoError(Exception):
    """The demo cannot start; the message says what to do."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own localhost URL
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise DemoError(f"{url} did not answer within {timeout:.0f} s")


def _check_assets(site: SiteConfig) -> None:
    """Every clip and model of the site on disk, downloading them when the network allows."""
    missing = [
        c.source.path
        for c in site.cameras
        if isinstance(c.source, FileSource) and not Path(c.source.path).exists()
    ]
    missing += sorted(
        {
            c.detector.model
            for c in site.cameras
            if "/" in c.detector.model and not Path(c.detector.model).exists()
        }
    )
    if not missing:
        return
    log.warning("missing: %s; trying to download the sample clips and models", ", ".join(missing))
    try:
        fetch(read_manifest("videos"), ROOT / "sample_videos" / "clips", timeout=20)
        fetch(read_manifest("models"), ROOT / "models" / "exports", timeout=20)
    except AssetError as exc:
        raise DemoError(
            "the demo needs the sample clips and a model, and they could not be downloaded "
            f"({exc}).\nGet them from the sources in sample_videos/manifest.yaml and models/manifest.yaml "
            "(for example Intel's CC-BY-4.0 sample-videos), then set CITYWATCH_VIDEO_DIR and "
            "CITYWATCH_MODEL, or run `citywatch assets fetch videos` and `citywatch assets fetch models` "
            "where the network allows."
        ) from exc
    os.environ["CITYWATCH_VIDEO_DIR"] = str(ROOT / "sample_videos" / "clips")
    os.environ["CITYWATCH_MODEL"] = str(ROOT / "models" / "exports" / "yolo11n_int8_openvino_model")


DEMO_EDGE_USER = "edge-demo"


@dataclass(frozen=True, slots=True)
class BrokerLogins:
    """The demo broker's users: the server's and the demo edge's (username, password)."""

    server: tuple[str, str]
    edge: tuple[str, str]

    def __repr__(self) -> str:  # keeps passwords out of tracebacks and debug logs
        return f"BrokerLogins(server={self.server[0]!r}, edge={self.edge[0]!r})"


def _write_broker_auth(site: SiteConfig, folder: Path) -> tuple[Path, Path, BrokerLogins]:
    """A password file (fresh passwords each run) and an ACL for the demo's private Mosquitto: the
    server's account as ``citywatch broker auth`` writes it, and one edge account for every camera
    (the demo runs one edge worker for the whole site)."""
    logins = BrokerLogins(
        (SERVER_USER, secrets.token_urlsafe(24)), (DEMO_EDGE_USER, secrets.token_urlsafe(24))
    )
    prefix, site_id = site.mqtt_prefix, site.site.id
    acl = render_acl(site, "the citywatch demo") + "\n".join(
        [
            f"user {DEMO_EDGE_USER}",
            *(f"topic write {prefix}/v{MAJOR}/{site_id}/{c.id}/#" for c in site.cameras),
            *(f"topic read {prefix}/acks/v{MAJOR}/{site_id}/{c.id}" for c in site.cameras),
            "",
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    acl_path, passwd_path = folder / "acl", folder / "passwd"
    acl_path.write_text(acl, encoding="utf-8")
    passwd_path.touch(mode=0o600)
    passwd_path.chmod(0o600)
    passwd_path.write_text(render_passwd(dict([logins.server, logins.edge])), encoding="utf-8")
    return acl_path, passwd_path, logins


@contextlib.contextmanager
def _broker(workdir: Path, site: SiteConfig) -> Iterator[tuple[str, BrokerLogins | None]]:
    """The broker's URL and, for the private Mosquitto, the logins it accepts (it has no anonymous
    access). The pure-Python fallback broker and a broker given by ``MQTT_URL`` come without."""
    if os.environ.get("MQTT_URL"):
        yield os.environ["MQTT_URL"], None
        return
    port = _free_port()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    logins: BrokerLogins | None = None
    if mosquitto:
        conf = workdir / "mosquitto.conf"
        (workdir / "mosquitto").mkdir(exist_ok=True)
        acl, passwd, logins = _write_broker_auth(site, workdir / "mosquitto-auth")
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n"
            f"persistence true\npersistence_location {workdir / 'mosquitto'}/\nmax_queued_messages 200000\n"
            # As root Mosquitto would drop to its own user and could not write its persistence here.
            + ("user root\n" if os.geteuid() == 0 else ""),
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        kind = "Mosquitto"
    else:
        proc = subprocess.Popen([sys.executable, "-m", "citywatch.embedded_broker", str(port)])
        kind = "amqtt"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError as exc:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise DemoError(f"the private {kind} broker did not start") from exc
                time.sleep(0.2)
        log.info(
            "private %s broker on 127.0.0.1:%d (%s)",
            kind,
            port,
            "password file and ACL, no anonymous access" if logins else "anonymous, loopback only",
        )
        yield f"mqtt://127.0.0.1:{port}", logins
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def _database(workdir: Path) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    try:
        import pgserver  # noqa: PLC0415
    except ImportError as exc:
        raise DemoError("no DATABASE_URL and no embedded PostgreSQL: pip install pgserver") from exc
    log.info("starting the embedded PostgreSQL under %s", workdir / "pgdata")
    pgdata = str(workdir / "pgdata")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


DEMO_ROLES = ("admin", "operator", "police", "planner")


def _demo_users(env: dict[str, str]) -> list[tuple[str, str]]:
    """One user per role, named after it, with a fresh random password (set anew when it exists)."""
    out = []
    for role in DEMO_ROLES:
        password = secrets.token_urlsafe(9)
        base = [sys.executable, "-m", "citywatch.cli", "server", "user"]
        add = subprocess.run(
            [*base, "add", role, "--role", role, "--display-name", f"Demo {role}", "--password-stdin"],
            input=password + "\n", env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if add.returncode != 0:
            reset = subprocess.run(
                [*base, "password", role, "--password-stdin"],
                input=password + "\n", env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if reset.returncode != 0:
                raise DemoError(f"could not create the demo user {role!r}: {add.stderr or reset.stderr}")
        out.append((role, password))
    return out


def _history(db_url: str, site: SiteConfig, site_path: Path, days: int, workdir: Path) -> None:
    """Sample history (``--history DAYS``); the first run replays each clip once (minutes on a small
    machine), later runs read the cache. A failure only loses the history."""
    from citywatch.demo_history import HistoryError, fill_history  # noqa: PLC0415

    t0 = time.monotonic()
    try:
        n = fill_history(db_url, site, site_path, days, workdir / "history")
    except HistoryError as exc:
        log.warning("no sample history: %s", exc)
        return
    except Exception:  # the top of a thread: log it, the live demo carries on
        log.exception("no sample history")
        return
    log.info("sample history: %d bins (%d days) in %.1f s", n, days, time.monotonic() - t0)


def run_demo(
    site_path: Path, http_port: int = 8000, cameras: list[str] | None = None, history_days: int = 28
) -> int:
    try:
        site = load_site(site_path)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    workdir = Path(os.environ.get("CITYWATCH_DEMO_DIR") or ROOT / ".demo")
    workdir.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    edge_port = _free_port()

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the demo as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    try:
        _check_assets(site)
        site = load_site(site_path)  # paths may have changed to downloaded copies
        with _broker(workdir, site) as (mqtt_url, logins), _database(workdir) as db_url:
            env = dict(
                os.environ,
                MQTT_URL=mqtt_url,
                DATABASE_URL=db_url,
                CITYWATCH_SITE=str(site_path),
                CITYWATCH_HTTP_PORT=str(http_port),
                CITYWATCH_SNAPSHOT_DIR=str(workdir / "snapshots"),
                CITYWATCH_JWT_SECRET=secrets.token_urlsafe(48),
                # The map shows each camera's latest annotated frame through the server.
                CITYWATCH_EDGE_FRAME_URL=f"http://127.0.0.1:{edge_port}/cameras/{{camera_id}}/frame.jpg",
                # Cameras added or changed in the web app reach the edge without a restart.
                CITYWATCH_CONFIG_PUSH="on",
            )
            edge_env = dict(env)
            if logins is not None:
                env.update(MQTT_USERNAME=logins.server[0], MQTT_PASSWORD=logins.server[1])
                edge_env.update(MQTT_USERNAME=logins.edge[0], MQTT_PASSWORD=logins.edge[1])
            server = subprocess.Popen([sys.executable, "-m", "citywatch.cli", "server", "run"], env=env)
            procs.append(server)
            _wait_http(f"http://127.0.0.1:{http_port}/healthz", 120, server)
            users = _demo_users(env)
            edge_cmd = [
                sys.executable,
                "-m",
                "citywatch.cli",
                "edge",
                "run",
                "--site",
                str(site_path),
                "--edge-id",
                "demo-edge",
                "--outbox",
                str(workdir / "outbox"),
                "--metrics-port",
                str(edge_port),
            ]
            for cam in cameras or []:
                edge_cmd += ["--camera", cam]
            procs.append(subprocess.Popen(edge_cmd, env=edge_env))
            if history_days > 0:  # in the background: the demo is usable meanwhile
                shown = [c for c in site.cameras if not cameras or c.id in cameras]
                threading.Thread(
                    target=_history,
                    args=(
                        db_url,
                        site.model_copy(update={"cameras": shown}),
                        site_path,
                        history_days,
                        workdir,
                    ),
                    daemon=True,
                ).start()
            print(  # noqa: T201 - the demo's user-facing banner
                f"\ncitywatch demo is running ({len(cameras or site.cameras)} camera(s), {site.site.name}):\n"
                f"  operations map and API   http://127.0.0.1:{http_port}/\n"
                f"  API documentation        http://127.0.0.1:{http_port}/docs\n"
                f"  edge health and metrics  http://127.0.0.1:{edge_port}/healthz  "
                f"http://127.0.0.1:{edge_port}/metrics\n"
                f"  broker {mqtt_url}   database {db_url.split('@')[-1]}\n"
                "  demo users (new passwords each run):\n"
                + "".join(f"    {name:9} password {pw}\n" for name, pw in users)
                + "Press Ctrl-C to stop.\n",
                flush=True,
            )
            while all(p.poll() is None for p in procs):
                time.sleep(1)
            failed = [p for p in procs if p.poll() is not None]
            for p in failed:
                log.error("%s exited with %s", p.args, p.returncode)
            return 1
    except KeyboardInterrupt:
        log.info("stopping the demo")
        return 0
    except DemoError as exc:
        log.error("%s", exc)
        return 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
