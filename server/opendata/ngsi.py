"""NGSI-LD entities (FIWARE Smart Data Models): ``TrafficFlowObserved`` for counts, ``Alert`` for open
incidents, ``RoadAccident`` for resolved accidents. Pure functions; key-values or normalized form.

Nothing personal goes out: no track ids, no snapshots, no plates; only counts and places.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from citywatch.site import Camera, SiteConfig
from server.opendata.cells import Cell, PublicBin

Form = Literal["normalized", "keyValues"]

TRANSPORTATION_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld"
)
ALERT_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"

#: COCO class -> TrafficFlowObserved ``vehicleType``. Classes not here (person) are not vehicles: they
#: are in the CSV/Parquet tables but not in the NGSI-LD feed.
VEHICLE_TYPE: dict[str, str] = {
    "car": "car",
    "motorcycle": "motorcycle",
    "bus": "bus",
    "truck": "lorry",
    "bicycle": "bicycle",
}

#: COCO class -> RoadAccident ``vehiclesInvolved`` code (0 pedestrian, 1 bicycle, 3 bus, 5 car, ...).
ACCIDENT_VEHICLE: dict[str, str] = {
    "person": "0",
    "bicycle": "1",
    "bus": "3",
    "car": "5",
    "truck": "11",
    "motorcycle": "14",
}
#: Incident types that are road accidents (the edge rules raise none yet; operators' tools may).
ACCIDENT_TYPES = frozenset({"accident", "collision"})

#: contract incident type -> Alert ``subCategory`` (traffic alerts only; others are not published).
ALERT_SUBCATEGORY: dict[str, str] = {
    "congestion": "trafficJam",
    "accident": "carAccident",
    "collision": "carAccident",
    "wrong_way": "carWrongDirection",
    "stopped_vehicle": "carStopped",
    "road_closed": "roadClosed",
    "hazard": "hazardOnRoad",
}


def utc_iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def _point(cam: Camera) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [cam.location.lon, cam.location.lat]}


def normalize(kv: dict[str, Any]) -> dict[str, Any]:
    """Key-values -> NGSI-LD normalized: Properties, a GeoProperty for ``location``, Relationships
    for ``ref*``, DateTime values typed."""
    out: dict[str, Any] = {}
    for key, value in kv.items():
        if key in {"id", "type", "@context"}:
            out[key] = value
        elif key == "location":
            out[key] = {"type": "GeoProperty", "value": value}
        elif key.startswith("ref"):
            out[key] = {"type": "Relationship", "object": value}
        elif key.startswith("date"):
            out[key] = {"type": "Property", "value": {"@type": "DateTime", "@value": value}}
        else:
            out[key] = {"type": "Property", "value": value}
    return out


def to_key_values(entity: dict[str, Any]) -> dict[str, Any]:
    """Normalized -> key-values (the inverse of :func:`normalize`); what the schemas validate."""
    out: dict[str, Any] = {}
    for key, attr in entity.items():
        if not isinstance(attr, dict) or key == "@context":
            out[key] = attr
        elif attr.get("type") == "Relationship":
            out[key] = attr["object"]
        else:
            value = attr.get("value")
            out[key] = value["@value"] if isinstance(value, dict) and "@value" in value else value
    return out


def flow_entity(
    site: SiteConfig, cell: Cell, g: PublicBin, form: Form, *, context: bool = True
) -> dict[str, Any]:
    """One counting cell as a ``TrafficFlowObserved``; None-free, schema-valid."""
    cam = site.camera(cell.camera_id)
    line = next((ln for ln in cam.lines if ln.id == cell.line_id), None)
    kv: dict[str, Any] = {
        "id": (
            f"urn:ngsi-ld:TrafficFlowObserved:{site.site.id}:{cell.camera_id}:{cell.line_id}:"
            f"{cell.direction}:{cell.cls}:{g}:{_compact(cell.bucket)}"
        ),
        "type": "TrafficFlowObserved",
        "name": f"{cam.name} / {line.name or line.id if line else cell.line_id} / {cell.direction}",
        "dataProvider": site.site.id,
        "location": _point(cam),
        "dateObserved": f"{utc_iso(cell.bucket)}/{utc_iso(cell.bucket_end)}",
        "dateObservedFrom": utc_iso(cell.bucket),
        "dateObservedTo": utc_iso(cell.bucket_end),
        "intensity": cell.count,
        "vehicleType": VEHICLE_TYPE[cell.cls],
        "cameraId": cell.camera_id,
        "lineId": cell.line_id,
        "direction": cell.direction,
        "aggregationPeriod": g,
        "sample": cell.sample,
    }
    if line is not None and cell.direction in (line.directions.positive, line.directions.negative):
        kv["laneDirection"] = "forward" if cell.direction == line.directions.positive else "backward"
    if context:
        kv["@context"] = [TRANSPORTATION_CONTEXT, CORE_CONTEXT]
    return kv if form == "keyValues" else normalize(kv)


def is_vehicle(cell: Cell) -> bool:
    return cell.cls in VEHICLE_TYPE


def alert_entity(site: SiteConfig, inc: dict[str, Any], form: Form) -> dict[str, Any] | None:
    """An open incident as an ``Alert`` (traffic category); None for non-traffic types."""
    sub = ALERT_SUBCATEGORY.get(str(inc["type"]))
    if sub is None:
        return None
    cam = site.camera(inc["camera_id"])
    kv: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Alert:{site.site.id}:{inc['incident_id']}",
        "type": "Alert",
        "category": "traffic",
        "subCategory": sub,
        "severity": {"info": "informational", "warning": "medium", "critical": "high"}.get(
            str(inc["severity"]), "medium"
        ),
        "alertSource": f"urn:ngsi-ld:Device:{site.site.id}:{inc['camera_id']}",
        "dateIssued": utc_iso(inc["started_at"]),
        "validFrom": utc_iso(inc["started_at"]),
        "description": f"{sub} near {cam.name}",
        "location": _point(cam),
        "@context": [ALERT_CONTEXT, CORE_CONTEXT],
    }
    return kv if form == "keyValues" else normalize(kv)


def accident_entity(site: SiteConfig, inc: dict[str, Any], form: Form) -> dict[str, Any]:
    """A resolved accident as an anonymised ``RoadAccident``: time, place and vehicle classes only
    (no track ids, no snapshot, no summary text that could name anyone)."""
    cam = site.camera(inc["camera_id"])
    classes = sorted({str(c) for c in inc.get("classes") or []})
    kv: dict[str, Any] = {
        "id": f"urn:ngsi-ld:RoadAccident:{site.site.id}:{inc['incident_id']}",
        "type": "RoadAccident",
        "accidentDate": utc_iso(inc["started_at"]),
        "accidentType": ["4"],  # 4: collision
        "status": "solved",
        "vehiclesInvolved": [ACCIDENT_VEHICLE[c] for c in classes if c in ACCIDENT_VEHICLE],
        "location": _point(cam),
        "@context": [TRANSPORTATION_CONTEXT, CORE_CONTEXT],
    }
    return kv if form == "keyValues" else normalize(kv)
