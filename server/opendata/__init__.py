"""Open data: public aggregates under ``/open/v1`` (NGSI-LD, CSV, Parquet, GeoJSON), daily dumps with a
DCAT catalogue, and NGSI-LD pushes to other agencies' context brokers."""
