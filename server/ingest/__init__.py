"""MQTT ingest: subscriber (paho thread) -> validation -> batch writer (thread) -> acknowledgement."""
