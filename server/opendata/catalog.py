"""The DCAT catalogue (JSON-LD) at ``/open/v1/catalog`` and the dump downloads it points to.

Titles and descriptions in Vietnamese and English; licence, publisher, update frequency, spatial
coverage (the cameras' bounding box) and temporal coverage (the dumped days); one distribution per
API representation and per dump file, each dump with its SHA-256 (SPDX checksum)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status

from citywatch.site import SiteConfig
from server.opendata.api import SiteDep, StateDep, _guard
from server.opendata.dumps import DATASETS, DumpInfo, dumps_state, get_dump, list_dumps
from server.opendata.http import CSV, LD_JSON, PARQUET, documented, respond

router = APIRouter(prefix="/open/v1", tags=["open data"], dependencies=[Depends(_guard)])

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
MEDIA = {"csv": CSV, "parquet": PARQUET}
TEXT: dict[str, dict[str, tuple[str, str]]] = {
    "catalog": {
        "title": ("Dữ liệu mở giao thông", "Open traffic data"),
        "description": (
            "Số liệu lưu lượng giao thông tổng hợp từ camera, công bố chậm và đã ẩn các ô nhỏ; "
            "không có biển số hay hình ảnh người.",
            "Aggregated traffic counts from cameras, published with a delay and small cells suppressed; "
            "no licence plates or images of people.",
        ),
    },
    "traffic-flow-hourly": {
        "title": ("Lưu lượng giao thông theo giờ", "Hourly traffic flow"),
        "description": (
            "Số phương tiện theo camera, vạch đếm, hướng và loại xe, theo từng giờ (giờ địa phương).",
            "Vehicles by camera, counting line, direction and class, per local hour.",
        ),
    },
    "traffic-flow-daily": {
        "title": ("Lưu lượng giao thông theo ngày", "Daily traffic flow"),
        "description": (
            "Số phương tiện theo camera, vạch đếm, hướng và loại xe, theo từng ngày (ngày địa phương).",
            "Vehicles by camera, counting line, direction and class, per local day.",
        ),
    },
    "cameras": {
        "title": ("Vị trí camera đếm xe", "Counting camera locations"),
        "description": ("Vị trí và vạch đếm của các camera (GeoJSON).", "Camera places and counting lines."),
    },
}


def _lang(pair: tuple[str, str]) -> list[dict[str, str]]:
    return [{"@language": "vi", "@value": pair[0]}, {"@language": "en", "@value": pair[1]}]


def _base(request: Request, site: SiteConfig) -> str:
    return (site.open_data.base_url or str(request.base_url)).rstrip("/")


def _spatial(site: SiteConfig) -> dict[str, Any]:
    lats = [c.location.lat for c in site.cameras]
    lons = [c.location.lon for c in site.cameras]
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    return {
        "@type": "dct:Location",
        "dcat:bbox": {
            "@type": "http://www.opengis.net/ont/geosparql#wktLiteral",
            "@value": f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))",
        },
        "dcat:centroid": {
            "@type": "http://www.opengis.net/ont/geosparql#wktLiteral",
            "@value": f"POINT({site.site.center.lon} {site.site.center.lat})",
        },
    }


def build_catalog(site: SiteConfig, base: str, dumps: list[DumpInfo]) -> dict[str, Any]:
    """The catalogue as a JSON-LD document. Pure."""
    od = site.open_data
    publisher: dict[str, Any] = {"@type": "foaf:Agent", "foaf:name": od.publisher.name}
    if od.publisher.url:
        publisher["foaf:homepage"] = {"@id": od.publisher.url}
    licence = {"@id": od.licence_url, "dct:identifier": od.licence}
    datasets: list[dict[str, Any]] = []
    if od.publish_counts:
        for ds, g in DATASETS.items():
            files = [d for d in dumps if d.dataset == ds]
            api = f"{base}/open/v1/flow?bin={g}"
            dists: list[dict[str, Any]] = [
                {
                    "@type": "dcat:Distribution",
                    "dct:title": f"NGSI-LD TrafficFlowObserved ({form})",
                    "dcat:accessURL": {"@id": f"{api}&options={form}"},
                    "dcat:mediaType": LD_JSON,
                    "dct:conformsTo": {
                        "@id": "https://smart-data-models.github.io/dataModel.Transportation/"
                        "TrafficFlowObserved/schema.json"
                    },
                    "dct:license": licence,
                }
                for form in ("normalized", "keyValues")
            ]
            for d in files:
                url = f"{base}/open/v1/dumps/{ds}/{d.day.isoformat()}.{d.format}"
                dists.append(
                    {
                        "@type": "dcat:Distribution",
                        "dct:title": f"{ds} {d.day.isoformat()} ({d.format})",
                        "dcat:accessURL": {"@id": url},
                        "dcat:downloadURL": {"@id": url},
                        "dcat:mediaType": MEDIA[d.format],
                        "dcat:byteSize": {"@type": "xsd:nonNegativeInteger", "@value": str(d.size)},
                        "spdx:checksum": {
                            "@type": "spdx:Checksum",
                            "spdx:algorithm": {"@id": "http://spdx.org/rdf/terms#checksumAlgorithm_sha256"},
                            "spdx:checksumValue": d.sha256,
                        },
                        "dct:issued": d.created_at.astimezone(UTC).isoformat(),
                        "dct:temporal": {
                            "@type": "dct:PeriodOfTime",
                            "dcat:startDate": d.day.isoformat(),
                            "dcat:endDate": d.day.isoformat(),
                        },
                        "dct:license": licence,
                        "citywatch:sample": d.sample,
                    }
                )
            days = sorted({d.day for d in files})
            datasets.append(
                {
                    "@id": f"{base}/open/v1/catalog#{ds}",
                    "@type": "dcat:Dataset",
                    "dct:identifier": ds,
                    "dct:title": _lang(TEXT[ds]["title"]),
                    "dct:description": _lang(TEXT[ds]["description"]),
                    "dcat:keyword": ["giao thông", "traffic", "lưu lượng", "flow", site.site.name],
                    "dct:publisher": publisher,
                    "dct:license": licence,
                    "dct:accrualPeriodicity": {"@id": "http://purl.org/cld/freq/daily"},
                    "dct:spatial": _spatial(site),
                    "dct:temporal": {
                        "@type": "dct:PeriodOfTime",
                        **(
                            {"dcat:startDate": days[0].isoformat(), "dcat:endDate": days[-1].isoformat()}
                            if days
                            else {}
                        ),
                    },
                    "citywatch:privacy": {"delay_s": od.delay_s, "k": od.k},
                    "dcat:distribution": dists,
                }
            )
    datasets.append(
        {
            "@id": f"{base}/open/v1/catalog#cameras",
            "@type": "dcat:Dataset",
            "dct:identifier": "cameras",
            "dct:title": _lang(TEXT["cameras"]["title"]),
            "dct:description": _lang(TEXT["cameras"]["description"]),
            "dct:publisher": publisher,
            "dct:license": licence,
            "dct:accrualPeriodicity": {"@id": "http://purl.org/cld/freq/irregular"},
            "dct:spatial": _spatial(site),
            "dcat:distribution": [
                {
                    "@type": "dcat:Distribution",
                    "dcat:accessURL": {"@id": f"{base}/open/v1/cameras.geojson"},
                    "dcat:downloadURL": {"@id": f"{base}/open/v1/cameras.geojson"},
                    "dcat:mediaType": "application/geo+json",
                    "dct:license": licence,
                }
            ],
        }
    )
    return {
        "@context": {**CONTEXT, "citywatch": f"{base}/open/v1/terms#"},
        "@id": f"{base}/open/v1/catalog",
        "@type": "dcat:Catalog",
        "dct:title": _lang(TEXT["catalog"]["title"]),
        "dct:description": _lang(TEXT["catalog"]["description"]),
        "dct:publisher": publisher,
        "dct:license": licence,
        "dct:language": [
            {"@id": "http://id.loc.gov/vocabulary/iso639-1/vi"},
            {"@id": "http://id.loc.gov/vocabulary/iso639-1/en"},
        ],
        "dcat:dataset": datasets,
    }


@router.get(
    "/catalog",
    response_class=Response,
    responses=documented(LD_JSON, ld_array=False),
    summary="DCAT catalogue (JSON-LD) of the open datasets and their downloads",
)
async def catalog(request: Request, site: SiteDep, st: StateDep) -> Response:
    st.usage.hit("catalog")
    key = f"catalog:{await dumps_state(request.app.state.pool)}"
    hit = st.cache.get(key)
    if hit is None:
        tz = ZoneInfo(site.site.timezone)
        first = datetime.now(tz).date() - timedelta(days=site.open_data.dump_days)
        dumps = await list_dumps(request.app.state.pool, first)
        doc = build_catalog(site, _base(request, site), dumps)
        hit = st.cache.put(key, json.dumps(doc, ensure_ascii=False).encode(), LD_JSON)
    return respond(request, hit)


_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(csv|parquet)(\.sha256)?$")


@router.get(
    "/dumps/{dataset}/{file}",
    response_class=Response,
    responses=documented(CSV, PARQUET, "text/plain"),
    summary="A daily dump file (CSV or Parquet) or its .sha256",
)
async def dump(
    request: Request,
    site: SiteDep,
    st: StateDep,
    dataset: Annotated[str, Path(pattern="^[a-z-]+$")],
    file: Annotated[str, Path(description="YYYY-MM-DD.csv, YYYY-MM-DD.parquet, or either + .sha256")],
) -> Response:
    m = _FILE.match(file)
    if dataset not in DATASETS or not site.open_data.publish_counts or m is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {dataset}/{file}")
    try:
        day = date.fromisoformat(m.group(1))
    except ValueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {dataset}/{file}") from exc
    kind = m.group(2)
    st.usage.hit(f"dump-{dataset}-{kind}")
    found = await get_dump(request.app.state.pool, dataset, day, kind)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} dump of {dataset} for {day}")
    data, digest = found
    name = f"{dataset}-{day.isoformat()}.{kind}"
    if m.group(3):
        return Response(f"{digest}  {name}\n", media_type="text/plain")
    hit = st.cache.put(
        f"dump:{dataset}:{day}:{kind}",
        data,
        MEDIA[kind],
        (("Content-Disposition", f'attachment; filename="{name}"'),),
    )
    return respond(request, hit)
