"""Settings of one edge worker process, from the environment (built in ``main``, passed down)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pydantic import SecretStr


class SettingsError(ValueError):
    """An environment variable has an unusable value."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str, username: str | None = None, password: str | None = None) -> MqttSettings:
        parsed = urlparse(url)
        if parsed.scheme not in {"mqtt", "mqtts", "tcp", "ssl"} or not parsed.hostname:
            raise SettingsError(f"MQTT_URL {url!r}: expected mqtt://host:port or mqtts://host:port")
        tls = parsed.scheme in {"mqtts", "ssl"}
        user = username or parsed.username
        secret = password or parsed.password
        return cls(
            host=parsed.hostname,
            port=parsed.port or (8883 if tls else 1883),
            tls=tls,
            username=user,
            password=SecretStr(secret) if secret else None,
        )


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    edge_id: str
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    outbox_dir: Path = Path(".outbox")
    outbox_max_messages: int = 500_000
    outbox_max_bytes: int = 1 << 30
    heartbeat_s: float = 10.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    model_override: str | None = None
    inflight: int = 20
    #: "server": a message leaves the outbox when the server confirms it (end to end, the default);
    #: "broker": on the broker's PUBACK (no citywatch server behind the broker).
    confirm: bool = True
    #: Frames of different cameras the shared detector runs in one call; 0: automatic (8 on CUDA, 1 on
    #: CPU, where a static batch-1 model runs a batch image by image: no gain, and every camera in the
    #: batch waits for the whole batch).
    max_batch: int = 0
    #: After a stop request, cameras that have not stopped within this many seconds are abandoned and
    #: the worker exits with an error naming them.
    shutdown_deadline_s: float = 15.0
    #: Apply configs the server pushes to this worker's camera groups (edge/config_sync.py).
    config_push: bool = False

    @classmethod
    def from_env(
        cls,
        edge_id: str | None = None,
        outbox: str | None = None,
        metrics_port: int | None = None,
        model: str | None = None,
        env: dict[str, str] | None = None,
    ) -> EdgeSettings:
        e = dict(os.environ) if env is None else env
        try:
            return cls(
                edge_id=edge_id or e.get("EDGE_ID") or _safe_id(socket.gethostname()),
                mqtt=MqttSettings.from_url(
                    e.get("MQTT_URL", "mqtt://127.0.0.1:1883"), e.get("MQTT_USERNAME"), e.get("MQTT_PASSWORD")
                ),
                outbox_dir=Path(outbox or e.get("CITYWATCH_OUTBOX", ".outbox")),
                outbox_max_messages=int(e.get("CITYWATCH_OUTBOX_MAX_MESSAGES", "500000")),
                outbox_max_bytes=int(float(e.get("CITYWATCH_OUTBOX_MAX_MB", "1024")) * (1 << 20)),
                heartbeat_s=float(e.get("CITYWATCH_HEARTBEAT_S", "10")),
                metrics_host=e.get("CITYWATCH_METRICS_HOST", "127.0.0.1"),
                metrics_port=metrics_port
                if metrics_port is not None
                else int(e.get("CITYWATCH_METRICS_PORT", "9108")),
                model_override=model or e.get("CITYWATCH_MODEL_OVERRIDE"),
                confirm=_delivery(e.get("CITYWATCH_DELIVERY", "server")),
                max_batch=_batch(e.get("CITYWATCH_MAX_BATCH", "auto")),
                shutdown_deadline_s=float(e.get("CITYWATCH_SHUTDOWN_DEADLINE_S", "15")),
                config_push=_on_off(e.get("CITYWATCH_CONFIG_PUSH", "off"), "CITYWATCH_CONFIG_PUSH"),
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc


def _delivery(value: str) -> bool:
    if value not in {"server", "broker"}:
        raise ValueError(f"CITYWATCH_DELIVERY must be 'server' or 'broker', not {value!r}")
    return value == "server"


def _on_off(value: str, name: str) -> bool:
    if value.lower() not in {"on", "off", "1", "0", "true", "false"}:
        raise ValueError(f"{name} must be 'on' or 'off', not {value!r}")
    return value.lower() in {"on", "1", "true"}


def _batch(value: str) -> int:
    if value == "auto":
        return 0
    n = int(value)
    if n < 1:
        raise ValueError(f"CITYWATCH_MAX_BATCH must be 'auto' or at least 1, not {value!r}")
    return n


def _safe_id(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64].strip("-_")
    return cleaned or "edge"
