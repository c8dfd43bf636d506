"""citywatch: shared pieces of the edge worker and the server (site config, CLI, geometry)."""

__version__ = "0.1.0"
