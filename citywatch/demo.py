"""``citywatch demo``: the whole system on the Quy Nhơn demo site, on one machine, with one command.

With nothing configured it starts a private MQTT broker (the Mosquitto binary on a free port, or the
pure-Python amqtt broker where Mosquitto is not installed) and an embedded PostgreSQL (``pgserver``,
a pip-installed server kept under ``.demo/``); ``MQTT_URL`` / ``DATABASE_URL`` point it at real ones
instead. Then it runs the server (which migrates) and an edge worker on the sample clips, looping,
prints the URLs and stops everything cleanly on Ctrl-C.
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
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from citywatch.assets import AssetError, fetch, read_manifest
from citywatch.site import ConfigError, FileSource, SiteConfig, load_site

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


@contextlib.contextmanager
def _broker(workdir: Path) -> Iterator[str]:
    if os.environ.get("MQTT_URL"):
        yield os.environ["MQTT_URL"]
        return
    port = _free_port()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto:
        conf = workdir / "mosquitto.conf"
        (workdir / "mosquitto").mkdir(exist_ok=True)
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir / 'mosquitto'}/\nmax_queued_messages 200000\n"
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
        log.info("private %s broker on 127.0.0.1:%d", kind, port)
        yield f"mqtt://127.0.0.1:{port}"
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


def run_demo(site_path: Path, http_port: int = 8000, cameras: list[str] | None = None) -> int:
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
        with _broker(workdir) as mqtt_url, _database(workdir) as db_url:
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
            procs.append(subprocess.Popen(edge_cmd, env=env))
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
