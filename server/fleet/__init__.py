"""Edges and cameras managed from the server: the registry, the MQTT bridge, the admin API."""
