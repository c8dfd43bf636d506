"""The batch writer on the real PostgreSQL: exactly once, bins unique, gaps, dead letters, rollups."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from contract import IncidentEvent, dump_message
from contract.messages import Envelope
from server.db.migrate import migrate
from server.ingest.validate import Accepted, Incoming, Rejected
from server.ingest.writer import BatchWriter
from tests.server.helpers import counts, heartbeat, incident, status

pytestmark = pytest.mark.integration
SITE = "ws"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def conn(fresh_db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(fresh_db, autocommit=True) as c:
        migrate(c, "Asia/Ho_Chi_Minh")
        yield c


@pytest.fixture(scope="module")
def writer() -> BatchWriter:
    return BatchWriter("plain", "Asia/Ho_Chi_Minh")


def acc(m: Envelope) -> Accepted:
    topic = f"citywatch/v1/{m.site_id}/{m.camera_id}/{getattr(m, 'kind', 'counts')}"
    return Accepted(Incoming(1, 1, topic, dump_message(m), time.time()), m)  # type: ignore[arg-type]


def one(conn: psycopg.Connection[tuple[object, ...]], query: str, *params: object) -> object:
    row = conn.execute(query.encode(), params).fetchone()  # test-only SQL
    assert row is not None
    return row[0]


def test_redelivery_and_resent_bin_change_nothing(
    conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter
) -> None:
    m = counts(SITE, "cam-dup", 1, T0)
    first = writer.write(conn, [acc(m), acc(m)])  # the same message twice in one batch
    assert first.stored == Counter({"counts": 1}) and first.duplicates == 1
    again = writer.write(conn, [acc(m)])  # redelivered later
    assert again.stored == Counter() and again.duplicates == 1
    other_id = counts(SITE, "cam-dup", 2, T0, {("L1", "north", "car"): 99})  # same bin, new id
    third = writer.write(conn, [acc(other_id)])
    assert third.duplicates == 1
    assert one(conn, "SELECT sum(count) FROM counts WHERE camera_id = 'cam-dup'") == 8
    assert one(conn, "SELECT sum(count) FROM counts_1h WHERE camera_id = 'cam-dup'") == 8
    assert one(conn, "SELECT n_bins FROM count_bins_1d WHERE camera_id = 'cam-dup'") == 1


def test_gap_opens_and_late_arrival_closes_it(
    conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter
) -> None:
    cam = "cam-gap"
    msgs = [counts(SITE, cam, s, T0 + timedelta(minutes=s)) for s in range(1, 11)]
    writer.write(conn, [acc(m) for m in msgs[:3]])
    r = writer.write(conn, [acc(msgs[9])])  # 4..9 missing
    assert r.gap_messages == 6
    open_gaps = (
        "SELECT first_seq, last_seq FROM seq_gaps WHERE camera_id = %s AND closed_at IS NULL ORDER BY 1"
    )
    assert conn.execute(open_gaps.encode(), (cam,)).fetchall() == [(4, 9)]
    writer.write(conn, [acc(msgs[5])])  # 6 arrives late: split
    assert conn.execute(open_gaps.encode(), (cam,)).fetchall() == [(4, 5), (7, 9)]
    writer.write(conn, [acc(heartbeat(SITE, cam, 4)), acc(msgs[4]), acc(msgs[6]), acc(msgs[7]), acc(msgs[8])])
    assert conn.execute(open_gaps.encode(), (cam,)).fetchall() == []
    assert one(conn, "SELECT count(*) FROM seq_gaps WHERE camera_id = %s AND closed_at IS NOT NULL", cam) == 2
    # status repeats the last seq and is not gap-checked
    writer.write(conn, [acc(status(SITE, cam, 10))])
    assert one(conn, "SELECT max_seq FROM camera_seq WHERE camera_id = %s", cam) == 10
    assert conn.execute(open_gaps.encode(), (cam,)).fetchall() == []


def test_dead_letters_keep_reason_and_bounded_payload(
    conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter
) -> None:
    big = b"x" * (10 * 1024 * 1024)
    rejected = Rejected(Incoming(1, 1, "citywatch/v1/ws/cam/counts", big, time.time()), "size", "too big")
    writer.write(conn, [rejected])
    size, stored, reason = conn.execute(
        "SELECT payload_size, length(payload), reason FROM dead_letters ORDER BY id DESC LIMIT 1"
    ).fetchone() or (0, 0, "")
    assert (size, stored, reason) == (10 * 1024 * 1024, 64 * 1024, "size")


def test_incident_history_and_state(
    conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter
) -> None:
    iid = uuid.uuid4()
    cam = "cam-inc"
    start = datetime.now(UTC) - timedelta(minutes=1)
    end_msg = incident(SITE, cam, 3, iid, IncidentEvent.END, start)
    writer.write(conn, [acc(end_msg)])  # the end arrives before the start
    writer.write(conn, [acc(incident(SITE, cam, 1, iid, IncidentEvent.START, start))])
    writer.write(conn, [acc(incident(SITE, cam, 2, iid, IncidentEvent.UPDATE, start))])
    state, track_ids = conn.execute(
        "SELECT state, track_ids FROM incidents WHERE incident_id = %s", (iid,)
    ).fetchone() or ("", [])
    assert state == "closed"
    assert track_ids == [1, 2, 3]
    assert one(conn, "SELECT count(*) FROM incident_events WHERE incident_id = %s", iid) == 3


def test_rollups_equal_raw_sums(conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter) -> None:
    cam = "cam-roll"
    msgs = [
        counts(
            SITE,
            cam,
            i + 1,
            T0 + timedelta(minutes=5 * i),
            {("L1", "north", "car"): i % 7, ("L2", "west", "bus"): 1},
            bin_s=300,
        )
        for i in range(600)
    ]
    for i in range(0, len(msgs), 97):  # odd batch sizes straddle buckets
        writer.write(conn, [acc(m) for m in msgs[i : i + 97]])
    for g, expr in (
        ("15m", "date_bin('15 minutes', bin_start, timestamptz '2000-01-01 00:00:00+00')"),
        ("1h", "date_trunc('hour', bin_start, 'Asia/Ho_Chi_Minh')"),
        ("1d", "date_trunc('day', bin_start, 'Asia/Ho_Chi_Minh')"),
    ):
        raw = conn.execute(
            f"SELECT {expr}, line_id, sum(count) FROM counts WHERE camera_id = %s "
            "GROUP BY 1, 2 ORDER BY 1, 2".encode(),
            (cam,),
        ).fetchall()
        rolled = conn.execute(
            f"SELECT bucket, line_id, count FROM counts_{g} WHERE camera_id = %s ORDER BY 1, 2".encode(),
            (cam,),
        ).fetchall()
        assert rolled == raw, g
    assert one(conn, "SELECT sum(count) FROM counts_1d WHERE camera_id = %s", cam) == sum(
        i % 7 + 1 for i in range(600)
    )


def test_zone_occupancy_and_speeds_are_stored_once(
    conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter
) -> None:
    from contract import SpeedStat, ZoneOccupancy

    base = counts(SITE, "cam-zs", 1, T0)
    m = base.model_copy(
        update={
            "zones": [
                ZoneOccupancy(
                    zone_id="z1", cls="car", mean_count=1.5, max_count=3, entries=4, mean_dwell_s=12.0
                ),
                ZoneOccupancy(zone_id="z1", cls="person", mean_count=0.2, max_count=1, entries=1),
            ],
            "speeds": [
                SpeedStat(line_id="L1", direction="north", cls="car", n=3, mean_kmh=41.5, p85_kmh=48.0)
            ],
        }
    )
    writer.write(conn, [acc(m)])
    writer.write(conn, [acc(m)])  # redelivered: nothing more
    rows = conn.execute(
        b"SELECT zone_id, cls, max_count, entries, mean_dwell_s FROM zone_occupancy "
        b"WHERE camera_id = 'cam-zs' ORDER BY cls"
    ).fetchall()
    assert rows == [("z1", "car", 3, 4, 12.0), ("z1", "person", 1, 1, None)]
    speeds = conn.execute(
        b"SELECT cls, n, mean_kmh, p85_kmh FROM speeds WHERE camera_id = 'cam-zs'"
    ).fetchall()
    assert speeds == [("car", 3, 41.5, 48.0)]


def test_incident_of_another_camera_is_dead_lettered_not_rewritten(
    conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter
) -> None:
    """Issue 12, item 4: an incident id learnt from an alert cannot be used to re-grade or close another
    camera's incident; the forged message is dead-lettered and nothing of it is stored."""
    iid, start = uuid.uuid4(), T0 + timedelta(hours=5)
    writer.write(conn, [acc(incident(SITE, "cam-own", 1, iid, IncidentEvent.START, start))])
    forged = incident(SITE, "cam-other", 7, iid, IncidentEvent.END, start - timedelta(hours=1))
    forged = forged.model_copy(update={"summary": "forged"})
    honest = incident(SITE, "cam-other", 8, uuid.uuid4(), IncidentEvent.START, start)
    result = writer.write(conn, [acc(forged), acc(honest)])  # one batch: the honest one is stored
    assert result.dead == Counter({"incident_owner": 1})
    assert result.stored == Counter({"incident": 1})
    row = conn.execute(
        "SELECT camera_id, state, summary, started_at FROM incidents WHERE incident_id = %s", (iid,)
    ).fetchone()
    assert row == ("cam-own", "open", "event start", start)
    assert one(conn, "SELECT count(*) FROM incident_events WHERE incident_id = %s", iid) == 1
    dead = conn.execute(
        "SELECT reason, camera_id, msg_id, detail FROM dead_letters WHERE msg_id = %s", (str(forged.msg_id),)
    ).fetchone()
    assert dead is not None and dead[:3] == ("incident_owner", "cam-other", str(forged.msg_id))
    assert "cam-own" in str(dead[3])
    assert one(conn, "SELECT count(*) FROM incidents WHERE camera_id = 'cam-other'") == 1


def test_names_with_copy_special_characters_are_stored_verbatim(
    conn: psycopg.Connection[tuple[object, ...]], writer: BatchWriter
) -> None:
    """Count cells go in through COPY's text format: backslash, tab and newline must survive it."""
    odd = {("L1", "in\\to\tthe\ncity\r", "car"): 2, ("L1", "N", "bus\\"): 3}
    writer.write(conn, [acc(counts(SITE, "cam-copy", 1, T0, odd))])
    rows = conn.execute(
        "SELECT direction, cls, count FROM counts WHERE camera_id = 'cam-copy' ORDER BY count"
    ).fetchall()
    assert rows == [("in\\to\tthe\ncity\r", "car", 2), ("N", "bus\\", 3)]
    assert one(conn, "SELECT sum(count) FROM counts_1d WHERE camera_id = 'cam-copy'") == 5
