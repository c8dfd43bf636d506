"""Storage: connections, migrations, TimescaleDB policies."""
