"""A private Mosquitto broker per test (its own port and persistence), which the test may stop and
start; the shared broker on 1883 is never touched."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, up: bool = True, timeout: float = 10.0) -> None:
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
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'}")


def _keep_user(extra_conf: str) -> str:
    """Started as root, Mosquitto drops to the `mosquitto` user and then cannot read the test's files
    or save its persistence in the test's folder (a restart would silently lose every session): keep
    the user that runs the tests."""
    if any(line.startswith("user ") for line in extra_conf.splitlines()):
        return ""  # the caller chose
    return f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"


class Broker:
    def __init__(self, workdir: Path, extra_conf: str = "", *, allow_anonymous: bool = True) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip("mosquitto is not installed (scripts/bootstrap.sh installs it)")
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous {str(allow_anonymous).lower()}\n"
            f"persistence true\n"
            f"persistence_location {self.dir}/\nautosave_interval 1\nmax_queued_messages 100000\n"
            f"max_inflight_messages 100\n{_keep_user(extra_conf)}{extra_conf}\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.dir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self) -> None:
        """A clean stop (SIGTERM): the broker saves its persistent sessions, as a restart would."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        wait_port(self.port, up=False)

    def kill(self) -> None:
        """SIGKILL: whatever the broker had in memory since its last autosave is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        wait_port(self.port, up=False)
