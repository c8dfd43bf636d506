"""Server settings: one class, built from the environment in ``main`` (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from server.errors import SettingsError

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"

# Environment variable -> field name.
_ENV: dict[str, str] = {
    "DATABASE_URL": "database_url",
    "MQTT_URL": "mqtt_url",
    "MQTT_USERNAME": "mqtt_username",
    "MQTT_PASSWORD": "mqtt_password",
    "MQTT_CLIENT_ID": "mqtt_client_id",
    "MQTT_SHARED_GROUP": "mqtt_shared_group",
    "MQTT_SESSION_EXPIRY_S": "mqtt_session_expiry_s",
    "MQTT_RECEIVE_MAXIMUM": "mqtt_receive_maximum",
    "CITYWATCH_SITE": "site_path",
    "CITYWATCH_SNAPSHOT_DIR": "snapshot_dir",
    "CITYWATCH_HTTP_HOST": "http_host",
    "CITYWATCH_HTTP_PORT": "http_port",
    "CITYWATCH_BATCH_SIZE": "batch_size",
    "CITYWATCH_BATCH_MS": "batch_ms",
    "CITYWATCH_BATCH_IDLE_MS": "batch_idle_ms",
    "CITYWATCH_MAX_FUTURE_S": "max_future_s",
    "CITYWATCH_MAX_AGE_DAYS": "max_age_days",
    "CITYWATCH_TIMESCALE": "timescale",
    "CITYWATCH_TS_COMPRESS_AFTER": "ts_compress_after",
    "CITYWATCH_TS_RAW_RETENTION": "ts_raw_retention",
    "CITYWATCH_TS_ROLLUP_RETENTION": "ts_rollup_retention",
    "CITYWATCH_DB_WAIT_S": "db_wait_s",
    "CITYWATCH_JWT_SECRET": "jwt_secret",
    "CITYWATCH_TOKEN_TTL_S": "token_ttl_s",
    "CITYWATCH_PUBLIC_URL": "public_url",
    "CITYWATCH_ALERTING": "alerting",
    "CITYWATCH_CONFIRM": "confirm",
    "CITYWATCH_MIGRATE_DATABASE_URL": "migrate_database_url",
    "CITYWATCH_AUDIT_KEY": "audit_key",
    "CITYWATCH_AUDIT_ANCHOR": "audit_anchor_path",
    "CITYWATCH_AUDIT_ANCHOR_S": "audit_anchor_s",
    "CITYWATCH_AGGREGATE_K": "aggregate_k",
    "CITYWATCH_AGGREGATE_BUCKET": "aggregate_bucket",
    "CITYWATCH_HISTORY_MAX_ROWS": "history_max_rows",
    "CITYWATCH_HISTORY_MAX_DAYS": "history_max_days",
    "CITYWATCH_HISTORY_MAX_RAW_DAYS": "history_max_raw_days",
    "CITYWATCH_LIVE_RECHECK_S": "live_recheck_s",
    "CITYWATCH_LIVE_SOCKETS_PER_USER": "live_sockets_per_user",
    "CITYWATCH_API_RATE": "api_rate_per_s",
    "CITYWATCH_API_BURST": "api_burst",
}


class Settings(BaseModel):
    """Everything the server process reads from its environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL), description="PostgreSQL DSN (may hold a password)."
    )
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://host:port (mqtts:// for TLS).")
    mqtt_username: str | None = Field(default=None, description="Broker user.")
    mqtt_password: SecretStr | None = Field(default=None, description="Broker password.")
    mqtt_client_id: str = Field(
        default="citywatch-server", min_length=1, description="Fixed id: the broker keeps its session."
    )
    mqtt_shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="MQTT 5 shared-subscription group; instances in one group share the messages.",
    )
    mqtt_session_expiry_s: int = Field(default=14 * 86400, ge=0, description="MQTT 5 session expiry.")
    mqtt_receive_maximum: int = Field(
        default=5000, ge=1, le=65535, description="Unacknowledged QoS 1 messages the broker may send us."
    )
    site_path: Path = Field(default=Path("config/quynhon.yaml"), description="Site config file.")
    snapshot_dir: Path | None = Field(
        default=None, description="Incident snapshots on disk here; in the database (bytea) when unset."
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    batch_size: int = Field(default=500, ge=1, le=20000, description="Messages per write transaction.")
    batch_ms: int = Field(default=200, ge=1, description="Longest wait to fill a batch.")
    batch_idle_ms: float = Field(
        default=5.0, gt=0, description="A batch closes early when no message arrives for this long."
    )
    max_future_s: int = Field(default=300, ge=0, description="Messages dated further ahead are rejected.")
    max_age_days: int = Field(default=365, ge=1, description="Messages older than this are rejected.")
    timescale: Literal["auto", "on", "off"] = Field(
        default="auto", description="Use TimescaleDB when the extension is available (auto)."
    )
    ts_compress_after: str = Field(default="7 days", description="Compress raw chunks older than this.")
    ts_raw_retention: str | None = Field(default=None, description="Drop raw chunks older (e.g. '2 years').")
    ts_rollup_retention: str | None = Field(default=None, description="Drop rollup data older than this.")
    db_wait_s: float = Field(default=60.0, ge=0, description="How long start-up waits for the database.")
    jwt_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Key that signs access tokens; set the same on every instance. Unset: a random key "
        "per process (tokens then end with a restart).",
    )
    token_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 86400, description="Access token lifetime.")
    public_url: str = Field(
        default="", description="The server's address as users reach it (links in alerts); '' = relative."
    )
    alerting: bool = Field(default=True, description="Run the alert engine (rules, channels, escalation).")
    confirm: bool = Field(
        default=True, description="Confirm committed sequence numbers to the edges (contract.acks)."
    )
    migrate_database_url: SecretStr | None = Field(
        default=None,
        description="DSN of the schema owner, used only to migrate (and to provision the DATABASE_URL "
        "role as a restricted application role); unset: DATABASE_URL migrates too.",
    )
    audit_key: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="HMAC key of the audit chain; never stored in the database. Unset: plain SHA-256 "
        "(anyone who can write the table can re-chain it).",
    )
    audit_anchor_path: Path | None = Field(
        default=None, description="File the audit head is appended to periodically (verify checks it)."
    )
    audit_anchor_s: float = Field(default=60.0, gt=0, description="How often the audit head is exported.")
    aggregate_k: int = Field(
        default=5, ge=1, description="Callers without incident rights see no cell counting fewer than k."
    )
    aggregate_bucket: Literal["1h", "1d"] = Field(
        default="1h", description="Ranges of callers without incident rights snap to these buckets."
    )
    history_max_rows: int = Field(
        default=100_000, ge=1, description="Most camera x bucket cells one history request may ask for."
    )
    history_max_days: int = Field(default=400, ge=1, description="Longest range of a history request.")
    history_max_raw_days: int = Field(
        default=31, ge=1, description="Longest range of a scan of raw rows (source=raw, turning movements)."
    )

    @property
    def migrate_dsn(self) -> str:
        """The DSN migrations run with: the owner's when set, else the application's."""
        url = self.migrate_database_url or self.database_url
        return url.get_secret_value()

    live_recheck_s: float = Field(
        default=30.0, gt=0, le=3600, description="Open live sockets re-check their user this often."
    )
    live_sockets_per_user: int = Field(default=4, ge=1, le=100, description="Open live sockets per user.")
    api_rate_per_s: float = Field(
        default=20.0, gt=0, description="Per-user API requests per second (token bucket refill)."
    )
    api_burst: int = Field(default=200, ge=1, description="Per-user API burst (token bucket size).")

    @property
    def mqtt_host_port(self) -> tuple[str, int, bool]:
        """Host, port and whether TLS is on, from ``mqtt_url``."""
        parts = urlsplit(self.mqtt_url)
        if parts.scheme not in {"mqtt", "mqtts", "tcp", "ssl"} or not parts.hostname:
            raise SettingsError(f"MQTT_URL: {self.mqtt_url!r} is not mqtt://host[:port]")
        tls = parts.scheme in {"mqtts", "ssl"}
        return parts.hostname, parts.port or (8883 if tls else 1883), tls

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values = {field: env[var] for var, field in _ENV.items() if env.get(var, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = {field: var for var, field in _ENV.items()}
            problems = "; ".join(
                f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else '?'}: {e['msg']}"
                for e in exc.errors()
            )
            raise SettingsError(problems) from exc
