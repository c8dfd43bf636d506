"""The site config: one YAML file per site with its cameras, counting lines, zones and incident rules.

Loaded with :func:`load_site`, which expands ``${VAR}`` / ``${VAR:-default}`` in strings, validates with
pydantic (unknown keys rejected) and then checks cross references. Every problem is reported at once as
a :class:`ConfigIssue` naming its path in the file (``cameras[2].lines[0].points``) and its YAML line.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from citywatch.alerting import AlertingSection
from citywatch.geometry import polygon_area, polygon_self_intersection
from citywatch.site_detector import AnalysisSettings
from citywatch.site_opendata import OpenDataSection
from citywatch.site_safety import (
    SAFETY_TYPES,
    CollisionRule,
    EvidenceRetention,
    EvidenceSettings,
    PersonDownRule,
    RoadBlockedRule,
    VehicleFallenRule,
    default_safety_rules,
)
from contract.messages import Severity
from contract.topics import ID_PATTERN


def _known_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: the name is looked up as a file, so "America" (a folder) or an over-long name fail so.
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


def _no_nul(value: str) -> str:
    # No file has such a name, and Path.resolve() raises ValueError on it.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Id = Annotated[str, Field(pattern=ID_PATTERN, description="Identifier: letters, digits, '_' and '-'.")]
#: An IANA time zone name, checked against the system's zone database.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
#: A file system path (or a name), resolved by :func:`load_site`.
PathText = Annotated[str, AfterValidator(_no_nul)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, description="Normalized image coordinate, 0..1.")]
NormPoint = tuple[Unit, Unit]

#: COCO classes that matter on a street, the default detector filter.
TRAFFIC_CLASSES: tuple[str, ...] = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
VEHICLE_CLASSES: tuple[str, ...] = ("bicycle", "car", "motorcycle", "bus", "truck")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatLon(_Strict):
    lat: float = Field(ge=-90, le=90, description="Latitude, degrees (WGS84).")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees (WGS84).")


class SiteInfo(_Strict):
    id: Id
    name: str = Field(min_length=1, description="Display name.")
    timezone: TimeZoneName = Field(description="IANA time zone for output, e.g. Asia/Ho_Chi_Minh.")
    center: LatLon = Field(description="Map centre.")
    zoom: int = Field(default=14, ge=1, le=20, description="Initial map zoom.")
    bin_seconds: int = Field(default=60, ge=1, le=3600, description="Count bin length; divides an hour.")

    @field_validator("bin_seconds")
    @classmethod
    def _divides_hour(cls, value: int) -> int:
        if 3600 % value:
            raise ValueError("must divide 3600 so bins align to the hour")
        return value


class FileSource(_Strict):
    kind: Literal["file"] = "file"
    path: PathText = Field(description="Video file; relative paths are resolved against the config's folder.")
    loop: bool = Field(default=False, description="Start again at the end (demos).")
    realtime: bool = Field(default=True, description="Pace frames at the file's frame rate.")


class StreamSource(_Strict):
    kind: Literal["stream"] = "stream"
    url: str = Field(description="rtsp://, rtsps://, rtmp://, http:// or https:// stream URL.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^(rtsps?|rtmp|https?)://[^\s]+$", value):
            raise ValueError("must be an rtsp://, rtsps://, rtmp://, http:// or https:// URL")
        return value


class WebcamSource(_Strict):
    kind: Literal["webcam"] = "webcam"
    index: int = Field(ge=0, description="OpenCV device index.")


Source = Annotated[FileSource | StreamSource | WebcamSource, Field(discriminator="kind")]


class DetectorSettings(_Strict):
    model: PathText = Field(
        default="yolo11n.pt",
        description="Ultralytics model name or local path (.pt, ONNX, OpenVINO folder, TensorRT engine).",
    )
    imgsz: int = Field(default=640, ge=32, le=4096, description="Inference image size.")
    conf: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Detections below this are discarded. The tracker starts tracks only above 0.25 but "
        "keeps following them through lower-scored detections (ByteTrack), so keep this low.",
    )
    iou: float = Field(default=0.5, gt=0, lt=1, description="NMS IoU threshold.")
    classes: list[str] = Field(default=list(TRAFFIC_CLASSES), min_length=1, description="COCO class names.")
    max_fps: float | None = Field(default=None, gt=0, le=120, description="Frame-rate cap for analysis.")
    tracker: Literal["bytetrack", "botsort"] = "bytetrack"
    device: str = Field(default="cpu", description="Inference device: cpu, cuda:0, ...")


class Directions(_Strict):
    positive: str = Field(
        default="positive",
        min_length=1,
        description="Name for crossings from the left to the right-hand side of the line as drawn "
        "(first to last point); 'down' for a line drawn left to right.",
    )
    negative: str = Field(default="negative", min_length=1, description="Name for the opposite crossing.")


class CountingLine(_Strict):
    id: Id
    name: str = ""
    points: list[NormPoint] = Field(min_length=2, description="Two or more points (a polyline).")
    directions: Directions = Field(default_factory=Directions)
    classes: list[str] | None = Field(default=None, description="Count only these classes.")
    min_travel: float = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="Distance (normalized) a track must travel past the line before a crossing counts.",
    )


ZoneKind = Literal[
    "restricted", "no_stopping", "crowd", "monitor", "carriageway", "loitering", "signal_queue"
]


class Zone(_Strict):
    id: Id
    name: str = ""
    kind: ZoneKind = "monitor"
    polygon: list[NormPoint] = Field(min_length=3, description="Three or more points, not self-intersecting.")
    classes: list[str] | None = Field(default=None, description="Only these classes count as inside.")

    @field_validator("polygon")
    @classmethod
    def _simple(cls, value: list[NormPoint]) -> list[NormPoint]:
        pair = polygon_self_intersection(value)
        if pair is not None:
            raise ValueError(f"polygon intersects itself (edges {pair[0]} and {pair[1]})")
        if polygon_area(value) <= 1e-6:
            raise ValueError("polygon has no area")
        return value


class _Rule(_Strict):
    id: Id
    severity: Severity = Severity.WARNING
    end_after_s: float = Field(default=3.0, ge=0, description="Condition absent this long ends the incident.")
    cooldown_s: float = Field(default=30.0, ge=0, description="No new incident of this rule before this.")


class StoppedVehicleRule(_Rule):
    type: Literal["stopped_vehicle"] = "stopped_vehicle"
    zone: Id | None = Field(default=None, description="Zone to watch; whole frame when empty.")
    classes: list[str] = Field(default=["car", "motorcycle", "bus", "truck"])
    min_seconds: float = Field(default=30.0, gt=0)
    max_motion: float = Field(
        default=0.01, gt=0, description="Normalized movement/s below which it is stopped."
    )


class WrongWayRule(_Rule):
    type: Literal["wrong_way"] = "wrong_way"
    line: Id
    expected: str = Field(description="The allowed direction name of that line; the other is wrong-way.")
    classes: list[str] = Field(default=list(VEHICLE_CLASSES))


class CongestionRule(_Rule):
    type: Literal["congestion"] = "congestion"
    zone: Id
    min_vehicles: int = Field(default=10, ge=1)
    max_motion: float = Field(default=0.03, gt=0, description="Mean normalized movement/s at most.")
    min_seconds: float = Field(default=30.0, gt=0)
    classes: list[str] = Field(default=list(VEHICLE_CLASSES))


class IntrusionRule(_Rule):
    type: Literal["intrusion"] = "intrusion"
    zone: Id
    classes: list[str] = Field(default=["person"])
    min_seconds: float = Field(default=1.0, ge=0)


class LoiteringRule(_Rule):
    type: Literal["loitering"] = "loitering"
    zone: Id
    classes: list[str] = Field(default=["person"])
    min_seconds: float = Field(default=120.0, gt=0)


class CrowdingRule(_Rule):
    type: Literal["crowding"] = "crowding"
    zone: Id
    min_people: int = Field(default=20, ge=1)
    min_seconds: float = Field(default=10.0, ge=0)


class TamperingRule(_Rule):
    type: Literal["tampering"] = "tampering"
    frozen_seconds: float = Field(default=10.0, gt=0, description="Identical frames this long: frozen.")
    black_level: float = Field(default=12.0, ge=0, le=255, description="Mean grey below this: black.")
    blur_threshold: float = Field(default=20.0, ge=0, description="Laplacian variance below this: blurred.")
    moved_threshold: float = Field(
        default=0.35, gt=0, le=1, description="Edge-map similarity to the reference below this: moved."
    )
    min_seconds: float = Field(default=5.0, ge=0, description="A condition must last this long.")


Rule = Annotated[
    StoppedVehicleRule
    | WrongWayRule
    | CongestionRule
    | IntrusionRule
    | LoiteringRule
    | CrowdingRule
    | TamperingRule
    | CollisionRule
    | VehicleFallenRule
    | PersonDownRule
    | RoadBlockedRule,
    Field(discriminator="type"),
]


class Calibration(_Strict):
    """Four image points and where they are on the ground; gives speeds and map positions."""

    image: list[NormPoint] = Field(min_length=4, max_length=4)
    world: list[LatLon] = Field(min_length=4, max_length=4)


class Junction(_Strict):
    """A junction seen by one camera: turning movements are counted from its entry to its exit lines."""

    id: Id
    name: str = ""
    entries: list[Id] = Field(min_length=1, description="Ids of this camera's lines where traffic enters.")
    exits: list[Id] = Field(
        min_length=1,
        description="Ids of this camera's lines where traffic leaves; a two-way approach is in both lists.",
    )


class Camera(_Strict):
    id: Id
    name: str = Field(min_length=1)
    location: LatLon
    heading: float = Field(default=0.0, ge=0, lt=360, description="Viewing direction, degrees from north.")
    group: Id = Field(default="default", description="Camera group (edge worker, alert scoping).")
    source: Source
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    analysis: AnalysisSettings = Field(
        default_factory=AnalysisSettings,
        description="Motion gating and detection region (defaults: chosen automatically).",
    )
    lines: list[CountingLine] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    junctions: list[Junction] = Field(
        default_factory=list, description="Junctions whose turning movements (entry -> exit) are counted."
    )
    calibration: Calibration | None = None
    evidence: EvidenceSettings = Field(
        default_factory=EvidenceSettings, description="Video clips of critical incidents."
    )
    road_safety: bool = Field(
        default=True,
        description="Run the road-safety rules (collision, vehicle_fallen, person_down, road_blocked) "
        "with their defaults over the whole frame where `rules` lists none of that type.",
    )

    def effective_rules(self) -> list[Rule]:
        """``rules`` plus the default road-safety rules this camera does not configure itself."""
        if not self.road_safety:
            return list(self.rules)
        have = {r.type for r in self.rules}
        taken = {r.id for r in self.rules}
        extra: list[Rule] = [r for r in default_safety_rules() if r.type not in have and r.id not in taken]
        return [*self.rules, *extra]

    def zone(self, zone_id: str) -> Zone:
        return next(z for z in self.zones if z.id == zone_id)

    def line(self, line_id: str) -> CountingLine:
        return next(ln for ln in self.lines if ln.id == line_id)


class SiteConfig(_Strict):
    site: SiteInfo
    mqtt_prefix: str = Field(default="citywatch", pattern=r"^[A-Za-z0-9_-]+$")
    cameras: list[Camera] = Field(min_length=1)
    alerting: AlertingSection = Field(
        default_factory=AlertingSection, description="Alert rules, delivery channels and SLA targets."
    )
    open_data: OpenDataSection = Field(
        default_factory=OpenDataSection, description="Open data: what is published, privacy rules, sharing."
    )
    evidence_retention: EvidenceRetention = Field(
        default_factory=EvidenceRetention,
        description="How long snapshots and clips are kept (citywatch server purge-evidence).",
    )

    def camera(self, camera_id: str) -> Camera:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)


# --------------------------------------------------------------------------------------------------
# Loading and error reporting


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path or '<root>'}{where}: {self.message}"


class ConfigError(Exception):
    """A site config that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(f"{source}: " + "; ".join(str(i) for i in issues))


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


Loc = tuple[int | str, ...]


def _expand(value: Any, env: Mapping[str, str], loc: Loc, unset: list[tuple[Loc, str]]) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            unset.append((loc, f"environment variable {name} is not set and has no default"))
            return ""

        return _VAR_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, (*loc, k), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, (*loc, i), unset) for i, v in enumerate(value)]
    return value


def _locate(root: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[str, int | None]:
    """Turn a pydantic error location into a YAML path and line, skipping union tags."""
    path = ""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if child is not None:
                path = f"{path}.{part}" if path else str(part)
                node = child
                line = node.start_mark.line + 1
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            path = f"{path}[{part}]"
            node = node.value[part]
            line = node.start_mark.line + 1
            continue
        if isinstance(part, int):
            path = f"{path}[{part}]"
        elif last or not isinstance(node, yaml.MappingNode):
            path = f"{path}.{part}" if path else str(part)
        # otherwise a discriminated-union tag, which has no place in the file
    return path, line


def _semantic_issues(cfg: SiteConfig) -> Iterator[tuple[tuple[int | str, ...], str]]:
    seen: dict[str, int] = {}
    for ci, cam in enumerate(cfg.cameras):
        where: tuple[int | str, ...] = ("cameras", ci)
        if cam.id in seen:
            yield (*where, "id"), f"duplicate camera id {cam.id!r} (also cameras[{seen[cam.id]}])"
        seen.setdefault(cam.id, ci)
        for kind, items in (
            ("lines", cam.lines),
            ("zones", cam.zones),
            ("rules", cam.rules),
            ("junctions", cam.junctions),
        ):
            ids: set[str] = set()
            for ii, item in enumerate(items):
                if item.id in ids:
                    yield (*where, kind, ii, "id"), f"duplicate id {item.id!r} in {kind}"
                ids.add(item.id)
        zone_ids = {z.id for z in cam.zones}
        lines = {ln.id: ln for ln in cam.lines}
        for ri, rule in enumerate(cam.rules):
            rwhere = (*where, "rules", ri)
            zone = getattr(rule, "zone", None)
            if zone is not None and zone not in zone_ids:
                yield (*rwhere, "zone"), f"unknown zone {zone!r} (zones: {sorted(zone_ids) or 'none'})"
            if rule.type in SAFETY_TYPES:
                for k, ref in enumerate(getattr(rule, "signal_zones", [])):
                    if ref not in zone_ids:
                        yield (*rwhere, "signal_zones", k), f"unknown zone {ref!r}"
            if isinstance(rule, WrongWayRule):
                line = lines.get(rule.line)
                if line is None:
                    yield (*rwhere, "line"), f"unknown line {rule.line!r} (lines: {sorted(lines) or 'none'})"
                elif rule.expected not in (line.directions.positive, line.directions.negative):
                    names = f"{line.directions.positive!r} or {line.directions.negative!r}"
                    yield (
                        (*rwhere, "expected"),
                        f"{rule.expected!r} is not a direction of {rule.line!r} ({names})",
                    )
        for ji, junction in enumerate(cam.junctions):
            for role, refs in (("entries", junction.entries), ("exits", junction.exits)):
                listed: set[str] = set()
                for k, ref in enumerate(refs):
                    if ref not in lines:
                        yield (
                            (*where, "junctions", ji, role, k),
                            f"unknown line {ref!r} (lines: {sorted(lines) or 'none'})",
                        )
                    elif ref in listed:
                        yield (*where, "junctions", ji, role, k), f"line {ref!r} is listed twice"
                    listed.add(ref)
        for li, line in enumerate(cam.lines):
            if line.directions.positive == line.directions.negative:
                yield (*where, "lines", li, "directions"), "the two direction names must differ"
            for pi in range(len(line.points) - 1):
                if line.points[pi] == line.points[pi + 1]:
                    yield (*where, "lines", li, "points"), f"points {pi} and {pi + 1} are the same"
        if cam.calibration is not None and polygon_self_intersection(cam.calibration.image) is not None:
            yield (
                (*where, "calibration", "image"),
                "the four image points must form a simple quadrilateral",
            )
    cams = {c.id for c in cfg.cameras}
    groups = {c.group for c in cfg.cameras}
    for ri, arule in enumerate(cfg.alerting.rules):
        for field, known, values in (("cameras", cams, arule.cameras), ("groups", groups, arule.groups)):
            for k, value in enumerate(values):
                if value not in known:
                    yield ("alerting", "rules", ri, field, k), f"unknown {field[:-1]} {value!r}"


def parse_site(text: str, source: str = "<string>", env: Mapping[str, str] | None = None) -> SiteConfig:
    """Validate site config text; raise :class:`ConfigError` with every issue found."""
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, [ConfigIssue("", f"not valid YAML: {exc}", line)]) from exc
    except (ValueError, RecursionError) as exc:
        # PyYAML lets through int()'s digit limit (ValueError) and nesting deeper than the stack.
        raise ConfigError(source, [ConfigIssue("", f"not valid YAML: {exc}")]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(source, [ConfigIssue("", "the file must be a mapping with 'site' and 'cameras'")])
    issues: list[ConfigIssue] = []
    unset: list[tuple[Loc, str]] = []
    try:
        expanded = _expand(raw, os.environ if env is None else env, (), unset)
    except RecursionError as exc:
        # A YAML alias inside its own node ("&a [*a]") makes a cycle; or nesting beyond the stack.
        raise ConfigError(
            source, [ConfigIssue("", "nested too deeply, or an alias refers to itself")]
        ) from exc
    for loc, message in unset:
        path, line = _locate(root, loc)
        issues.append(ConfigIssue(path, message, line))
    if issues:
        raise ConfigError(source, issues)
    try:
        cfg = SiteConfig.model_validate(expanded)
    except ValidationError as exc:
        for err in exc.errors():
            path, line = _locate(root, tuple(err["loc"]))
            issues.append(ConfigIssue(path, err["msg"], line))
        raise ConfigError(source, issues) from exc
    for loc, message in _semantic_issues(cfg):
        path, line = _locate(root, loc)
        issues.append(ConfigIssue(path, message, line))
    if issues:
        raise ConfigError(source, issues)
    return cfg


def load_site(path: str | Path, env: Mapping[str, str] | None = None) -> SiteConfig:
    """Load a site config file; relative video and model paths are resolved against the file's folder."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [ConfigIssue("", f"cannot read: {exc.strerror or exc}")]) from exc
    cfg = parse_site(text, str(file), env)
    cameras = []
    for cam in cfg.cameras:
        update: dict[str, Any] = {}
        if isinstance(cam.source, FileSource) and not Path(cam.source.path).is_absolute():
            resolved = str((file.parent / cam.source.path).resolve())
            update["source"] = cam.source.model_copy(update={"path": resolved})
        model = cam.detector.model
        if "/" in model and not Path(model).is_absolute():
            # A relative model path is relative to the config file; a bare name is an Ultralytics name.
            update["detector"] = cam.detector.model_copy(
                update={"model": str((file.parent / model).resolve())}
            )
        cameras.append(cam.model_copy(update=update) if update else cam)
    return cfg.model_copy(update={"cameras": cameras})
