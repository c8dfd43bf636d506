"""Settings come from the environment, with defaults, and never show secrets."""

from __future__ import annotations

import pytest

from server.errors import SettingsError
from server.settings import Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.mqtt_host_port == ("127.0.0.1", 1883, False)
    assert s.http_port == 8000
    assert s.mqtt_shared_group is None


def test_environment_overrides_and_secrets_hidden() -> None:
    s = Settings.from_env(
        {"MQTT_URL": "mqtts://broker:8884", "MQTT_PASSWORD": "hunter2", "MQTT_SHARED_GROUP": "ingest",
         "DATABASE_URL": "postgresql://u:topsecret@db/x", "CITYWATCH_BATCH_SIZE": "250"}
    )  # fmt: skip
    assert s.mqtt_host_port == ("broker", 8884, True)
    assert s.batch_size == 250
    assert "hunter2" not in repr(s) and "topsecret" not in repr(s)


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CITYWATCH_BATCH_SIZE"):
        Settings.from_env({"CITYWATCH_BATCH_SIZE": "lots"})
