"""Site-config rules of the road-safety incidents: collision, vehicle fallen, person down, road blocked.

Every camera runs all four with their defaults over the whole frame unless it sets
``road_safety: false`` or lists its own rule of that type (which then replaces the default): a camera
nobody configured sees a crash on day one. Speeds and sizes are measured in box heights so that the
same thresholds hold near and far from the camera. How each rule decides: docs/edge.md, "Road safety".
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.messages import Severity
from contract.topics import ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN, description="Identifier: letters, digits, '_' and '-'.")]

VEHICLES: tuple[str, ...] = ("car", "truck", "bus", "motorcycle", "bicycle")


class _SafetyRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    severity: Severity = Field(default=Severity.CRITICAL, description="Road-safety incidents are critical.")
    end_after_s: float = Field(default=5.0, ge=0, description="Condition absent this long ends the incident.")
    cooldown_s: float = Field(default=60.0, ge=0, description="No new incident for the same key before this.")
    zone: Id | None = Field(
        default=None, description="Watch only this zone (e.g. the carriageway); whole frame when empty."
    )


class CollisionRule(_SafetyRule):
    """Two road users whose boxes meet while at least one of them brakes abruptly, then stays slowed."""

    type: Literal["collision"] = "collision"
    classes: list[str] = Field(
        default=[*VEHICLES, "person"], description="Classes that can be party to a collision."
    )
    min_speed: float = Field(
        default=1.5, gt=0, description="Speed before contact (box heights/s) of the faster party."
    )
    max_decel_seconds: float = Field(
        default=0.8,
        gt=0,
        description="The speed must fall by `min_drop` within this long: a crash stops a vehicle in a "
        "fraction of a second, a driver braking for a red light takes two or more.",
    )
    min_drop: float = Field(default=0.7, gt=0, le=1, description="Fraction of the speed lost abruptly.")
    contact_gap: float = Field(
        default=0.1, ge=0, description="Boxes closer than this (in the smaller box's heights) meet."
    )
    vanish_seconds: float = Field(
        default=0.4, gt=0, description="A party unseen this long after the contact has vanished."
    )
    max_cover: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A vanished party counts only if the other box covered less than this of it "
        "(more is an occlusion, as when a car passes in front of another).",
    )
    confirm_seconds: float = Field(
        default=3.0, gt=0, description="A vehicle must come to rest near the contact within this."
    )
    rest_seconds: float = Field(default=1.0, gt=0, description="At rest: this long ...")
    rest_speed: float = Field(default=0.3, gt=0, description="... at most this speed (box heights/s).")
    rest_reach: float = Field(
        default=2.0, gt=0, description="At rest within this many box heights of the contact point."
    )
    signal_zones: list[Id] = Field(
        default_factory=list,
        description="Zones where traffic queues at a signal (default: every zone of kind "
        "'signal_queue'); there a collision needs `signal_min_speed` before contact.",
    )
    signal_min_speed: float = Field(
        default=2.5, gt=0, description="Speed before contact (box heights/s) required in a signal zone."
    )
    min_seconds: float = Field(default=0.0, ge=0, description="The condition must hold this long.")


class VehicleFallenRule(_SafetyRule):
    """A vehicle whose box turns from upright to lying (aspect flip), or a two-wheeler whose rider
    separates from it while it stops."""

    type: Literal["vehicle_fallen"] = "vehicle_fallen"
    classes: list[str] = Field(default=list(VEHICLES))
    flip_ratio: float = Field(
        default=1.8,
        gt=1,
        description="Width/height of the box must grow by this factor against its own upright "
        "median (a motorbike down is wide and flat; a parked one keeps its shape).",
    )
    min_seconds: float = Field(default=1.0, ge=0, description="The lying shape must last this long.")
    max_motion: float = Field(
        default=0.6, gt=0, description="Lying vehicle's speed at most this (box heights/s)."
    )
    min_history_s: float = Field(
        default=0.8, gt=0, description="The vehicle must have been seen upright this long before."
    )


class PersonDownRule(_SafetyRule):
    """A person whose box is wide and low (lying or sitting on the road) and stays so."""

    type: Literal["person_down"] = "person_down"
    max_aspect: float = Field(
        default=0.9,
        gt=0,
        description="Height/width of the box at most this: a standing person is about 2.5, one lying "
        "down under 1.",
    )
    crash_max_aspect: float = Field(
        default=1.2,
        gt=0,
        description="Within `crash_window_s` after a collision or a fallen vehicle on this camera: a "
        "person sitting (height/width up to this) also counts.",
    )
    crash_window_s: float = Field(default=60.0, ge=0, description="How long after a crash (above).")
    min_seconds: float = Field(default=0.8, ge=0, description="Must stay down this long.")
    max_motion: float = Field(default=0.8, gt=0, description="Speed at most this (box heights/s).")
    upright_first: bool = Field(
        default=True,
        description="Without a crash nearby, count only a person first seen upright (a shape that was "
        "always low is more likely a mis-detected object).",
    )


class RoadBlockedRule(_SafetyRule):
    """Vehicles stand still on the road for a long time with no flow past them."""

    type: Literal["road_blocked"] = "road_blocked"
    classes: list[str] = Field(default=["car", "truck", "bus"])
    min_seconds: float = Field(default=20.0, gt=0, description="Vehicles stand still this long.")
    max_motion: float = Field(default=0.08, gt=0, description="Speed at most this (box heights/s).")
    min_stopped: int = Field(default=1, ge=1, description="Stopped vehicles that form the obstruction.")
    after_collision_only: bool = Field(
        default=True,
        description="Raise only for vehicles involved in a collision or fallen: on an unconfigured "
        "camera a parked car cannot be told from a blockage otherwise.",
    )
    signal_zones: list[Id] = Field(
        default_factory=list, description="Zones where a stopped queue is normal (signal); ignored."
    )


SafetyRule = CollisionRule | VehicleFallenRule | PersonDownRule | RoadBlockedRule
SAFETY_TYPES: tuple[str, ...] = ("collision", "vehicle_fallen", "person_down", "road_blocked")


def default_safety_rules() -> list[SafetyRule]:
    """The road-safety rules a camera runs when it configures none of them."""
    return [
        CollisionRule(id="collision"),
        VehicleFallenRule(id="vehicle-fallen"),
        PersonDownRule(id="person-down"),
        RoadBlockedRule(id="road-blocked"),
    ]


class EvidenceSettings(BaseModel):
    """Video evidence: each camera keeps a short ring of recent frames; on the start of a critical
    incident it writes a clip of the seconds before and after with the involved boxes drawn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Record clips of critical incidents.")
    before_s: float = Field(default=5.0, ge=0, le=30, description="Seconds before the incident start.")
    after_s: float = Field(default=10.0, ge=0, le=60, description="Seconds after the incident start.")
    fps: float = Field(default=8.0, gt=0, le=30, description="Frame rate of the clip (and of the ring).")
    max_width: int = Field(default=640, ge=64, le=1920, description="Frames are scaled down to this.")
    max_bytes: int = Field(
        default=1_400_000,
        ge=10_000,
        le=1_500_000,
        description="Size cap of one clip; a larger one is re-encoded smaller, then dropped. Base64 of "
        "the cap must fit the 2 MiB payload limit.",
    )
    min_severity: Severity = Field(default=Severity.CRITICAL, description="Lowest severity with a clip.")


class EvidenceRetention(BaseModel):
    """How long snapshots and clips (personal data: faces, plates; Decree 13/2023/ND-CP) are kept.

    ``citywatch server purge-evidence`` deletes the evidence of incidents older than their period and
    records each deletion in the audit log. An incident under investigation (workflow ``acknowledged``
    or ``assigned``) keeps its evidence for ``investigation_days``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_days: float = Field(default=30.0, gt=0, description="Days evidence is kept by default.")
    per_type: dict[str, float] = Field(
        default_factory=lambda: {t: 90.0 for t in SAFETY_TYPES},
        description="Days per incident type (default: 90 for the road-safety types).",
    )
    investigation_days: float = Field(
        default=365.0, gt=0, description="Days for incidents under investigation (acknowledged, assigned)."
    )

    def days_for(self, incident_type: str, workflow_state: str) -> float:
        """The retention period of one incident's evidence, in days."""
        if workflow_state in ("acknowledged", "assigned"):
            return max(self.investigation_days, self.per_type.get(incident_type, self.default_days))
        return self.per_type.get(incident_type, self.default_days)
