-- citywatch: backend=timescale
-- TimescaleDB: movements is a time series like counts (0003); its key includes bin_start, as a
-- hypertable's unique indexes must.

SELECT create_hypertable('movements', 'bin_start', chunk_time_interval => INTERVAL '7 days', migrate_data => true);
