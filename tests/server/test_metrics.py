"""The Prometheus text output carries what operators alert on."""

from __future__ import annotations

from server.metrics import Metrics


def test_render_counts_batches_dead_letters_and_histograms() -> None:
    m = Metrics()
    m.on_received()
    m.on_batch(
        size=3,
        stored={"counts": 2},
        duplicates=1,
        dead={"json": 1},
        gap_messages=4,
        gap_filled=1,
        commit_latencies_s=[0.02, 0.3],
        lags_s=[1.5],
    )
    text = m.render()
    lines = set(text.splitlines())
    assert 'citywatch_ingest_stored_total{kind="counts"} 2' in lines
    assert 'citywatch_ingest_dead_letters_total{reason="json"} 1' in lines
    assert "citywatch_ingest_duplicates_total 1" in lines
    assert "citywatch_ingest_gap_messages_total 4" in lines
    assert 'citywatch_ingest_batch_size_bucket{le="10"} 1' in lines
    assert 'citywatch_ingest_commit_latency_seconds_bucket{le="0.25"} 1' in lines
    assert "citywatch_ingest_commit_latency_seconds_count 2" in lines
    assert "citywatch_ingest_lag_seconds_last 1.500" in lines
    # every sample line belongs to a declared metric family
    declared = {ln.split()[2] for ln in lines if ln.startswith("# TYPE")}
    samples = {ln.split("{")[0].split()[0] for ln in lines if ln and not ln.startswith("#")}
    assert all(any(s == d or s.startswith(d + "_") for d in declared) for s in samples)
