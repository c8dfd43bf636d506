"""citywatch server: MQTT ingest into PostgreSQL/TimescaleDB, history and live APIs, alerting, web."""
