"""Run ``citywatch server run`` as a real subprocess (so a test can SIGKILL it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ServerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "CITYWATCH_HTTP_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_key: str | None = None  # an admin key, made once the server has migrated

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _ensure_key(self) -> None:
        if self.api_key is None:
            from server.auth.users import create_api_key

            dsn = self.env["DATABASE_URL"]
            self.api_key = create_api_key(dsn, f"tests-{self.port}-{uuid.uuid4().hex[:6]}", "admin", "tests")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        if not _bindable(self.port):
            # While the server was down another socket (an outgoing connection's ephemeral port)
            # may have taken its port: restart on a new one rather than fail to bind.
            self.port = free_port()
            self.env["CITYWATCH_HTTP_PORT"] = str(self.port)
        exe = Path(sys.executable).with_name("citywatch")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(exe), "server", "run"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    self._ensure_key()  # /healthz answers once migrations are done
                    r = httpx.get(f"{self.url}/metrics", timeout=1.0, headers=self.headers)
                    if r.status_code == 200 and "citywatch_mqtt_connected 1" in r.text:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not come up: {self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5.0, headers=self.headers).text

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        """GET with the admin key."""
        return httpx.get(f"{self.url}{path}", headers=self.headers, timeout=10.0, **kwargs)  # type: ignore[arg-type]

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""
