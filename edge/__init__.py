"""citywatch edge worker: capture -> detect -> track -> analytics -> publish (MQTT with a durable outbox)."""
