"""The planner inference attack: bisecting the range of the history endpoints with ever finer sub-ranges
must not date or place a single incident (or a single vehicle's turn).

On main the incidents endpoint took any range down to the microsecond and reported a cell of one: the
query ``[t, t + 1 µs)`` answered "cam-p1, wrong_way, 1", which is the incident queue rebuilt.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from contract import IncidentEvent, Movement
from server.ingest.writer import BatchWriter
from tests.server.helpers import counts, incident
from tests.server.history_data import START
from tests.server.security_history.common import Headers, migrated, serve, write_site
from tests.server.test_writer import acc

pytestmark = pytest.mark.integration
SITE = "infer"
CAM = "cam-p1"
JUNCTION = "    junctions:\n      - {id: j1, name: Main x Side, entries: [L1, L2], exits: [L1, L2]}\n"
K = 5
#: The lone incident, at an odd instant of the second day's 03:00 hour (local).
LONE = START + timedelta(days=1, hours=3, minutes=17, seconds=23, microseconds=456789)
#: K incidents in one hour of the first day: a cell big enough to be shown.
CROWD = [START + timedelta(hours=5, minutes=7 * i) for i in range(K)]
#: One vehicle's turn L1 -> L2 at 07:10 on day 1, and K + 2 motorcycles turning L2 -> L1 the same bin.
TURN_BIN = START + timedelta(hours=7, minutes=10)


@pytest.fixture(scope="module")
def app(
    fresh_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, Headers]]]:
    site_path = write_site(tmp_path_factory.mktemp("site"), SITE, [CAM], JUNCTION)
    site = migrated(fresh_db, site_path)
    writer = BatchWriter("plain", site.site.timezone)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for seq, started in enumerate([LONE, *CROWD], start=1):
            writer.write(conn, [acc(incident(SITE, CAM, seq, uuid.uuid4(), IncidentEvent.START, started))])
        # The SLA clock starts at received_at (now() on insert): date it like the incident.
        conn.execute("UPDATE incidents SET received_at = started_at")
        moves = [
            Movement(junction_id="j1", from_line="L1", to_line="L2", cls="car", count=1),
            Movement(junction_id="j1", from_line="L2", to_line="L1", cls="motorcycle", count=K + 2),
        ]
        msg = counts(SITE, CAM, 100, TURN_BIN, bin_s=60).model_copy(update={"movements": moves})
        writer.write(conn, [acc(msg)])
    env = {"CITYWATCH_AGGREGATE_K": str(K)}
    with serve(fresh_db, site_path, env, roles=("operator", "police", "planner")) as (client, headers):
        yield client, headers


def _incidents(client: TestClient, h: Headers, start: datetime, end: datetime) -> dict[str, Any]:
    r = client.get(
        "/api/v1/history/incidents", params={"start": start.isoformat(), "end": end.isoformat()}, headers=h
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# Sub-ranges an attacker bisects with: all inside the lone incident's hour.
HOUR = LONE.replace(minute=0, second=0, microsecond=0)
SUB_RANGES = [
    (LONE, LONE + timedelta(microseconds=1)),
    (LONE - timedelta(microseconds=1), LONE),
    (HOUR, LONE),
    (LONE, HOUR + timedelta(minutes=59)),
    (HOUR + timedelta(minutes=30), HOUR + timedelta(minutes=31)),
]


@pytest.mark.parametrize(("start", "end"), SUB_RANGES, ids=["at", "just-before", "head", "tail", "elsewhere"])
def test_bisecting_incidents_learns_nothing_finer_than_the_hour(
    app: tuple[TestClient, dict[str, Headers]], start: datetime, end: datetime
) -> None:
    client, h = app
    whole_hour = _incidents(client, h["planner"], HOUR, HOUR + timedelta(hours=1))
    got = _incidents(client, h["planner"], start, end)
    # Every sub-range of the hour answers exactly what the whole hour answers ...
    assert got["rows"] == whole_hour["rows"]
    assert (got["start"], got["end"]) == (whole_hour["start"], whole_hour["end"])
    # ... and the lone incident's cell is marked, its count withheld.
    assert [(r["camera_id"], r["type"], r["count"], r["suppressed"]) for r in got["rows"]] == [
        (CAM, "wrong_way", None, True)
    ]
    assert got["suppressed_below"] == K


def test_cells_of_k_or_more_are_shown_and_incident_roles_see_exact_counts(
    app: tuple[TestClient, dict[str, Headers]],
) -> None:
    client, h = app
    day1 = _incidents(client, h["planner"], START, START + timedelta(days=1))
    assert [(r["count"], r["suppressed"]) for r in day1["rows"]] == [(K, False)]
    # Police see incidents one by one anyway (the queue): no snapping, no suppression.
    exact = _incidents(client, h["police"], LONE, LONE + timedelta(microseconds=1))
    assert [(r["count"], r["suppressed"]) for r in exact["rows"]] == [(1, False)]
    assert "suppressed_below" not in exact


def test_suppressed_cells_are_marked_in_csv(app: tuple[TestClient, dict[str, Headers]]) -> None:
    client, h = app
    params = {"start": LONE.isoformat(), "end": (LONE + timedelta(seconds=1)).isoformat(), "format": "csv"}
    r = client.get("/api/v1/history/incidents", params=params, headers=h["planner"])
    lines = r.text.splitlines()
    assert lines[0].endswith(",count,suppressed")
    assert lines[1].endswith(",,True")  # count empty, suppressed true: not silently dropped


def _turns(client: TestClient, h: Headers, start: datetime, end: datetime) -> dict[str, Any]:
    r = client.get(
        "/api/v1/history/turning-movements",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=h,
    )
    assert r.status_code == 200, r.text
    (junction,) = r.json()["junctions"]
    out: dict[str, Any] = junction
    return out


def test_turning_movements_single_vehicle_suppressed_and_range_snapped(
    app: tuple[TestClient, dict[str, Headers]],
) -> None:
    client, h = app
    one_bin = _turns(client, h["planner"], TURN_BIN, TURN_BIN + timedelta(minutes=1))
    whole_hour = _turns(
        client, h["planner"], TURN_BIN.replace(minute=0), TURN_BIN.replace(minute=0) + timedelta(hours=1)
    )
    assert one_bin == whole_hour
    assert one_bin["matrix"] == {"L1": {"L2": {"car": None}}, "L2": {"L1": {"motorcycle": K + 2}}}
    assert (one_bin["total"], one_bin["suppressed"]) == (K + 2, 1)
    # An operator sees the single turn.
    exact = _turns(client, h["operator"], TURN_BIN, TURN_BIN + timedelta(minutes=1))
    assert exact["matrix"]["L1"]["L2"]["car"] == 1 and exact["suppressed"] == 0


def test_sla_report_snaps_to_days_and_suppresses_small_bins(
    app: tuple[TestClient, dict[str, Headers]],
) -> None:
    client, h = app

    def sla(hdr: Headers, start: datetime, end: datetime) -> list[dict[str, Any]]:
        r = client.get(
            "/api/v1/sla", params={"start": start.isoformat(), "end": end.isoformat()}, headers=hdr
        )
        assert r.status_code == 200, r.text
        bins: list[dict[str, Any]] = r.json()["bins"]
        return bins

    planner = sla(h["planner"], START, START + timedelta(days=2))
    assert [(b["incidents"], b["suppressed"]) for b in planner] == [(K, False), (None, True)]
    assert planner[1]["ack_p50_s"] is None and planner[1]["ack_breaches"] is None
    # The bisected range gives the whole day, suppressed.
    assert sla(h["planner"], LONE, LONE + timedelta(microseconds=1)) == [planner[1]]
    assert [b["incidents"] for b in sla(h["police"], LONE, LONE + timedelta(microseconds=1))] == [1]
