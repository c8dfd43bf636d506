"""Per-camera analysis budget in the site config: motion gating and the detection region.

A camera configured with only its source and lines gets working defaults: motion gating on, measured
in the region around its lines and zones (an empty road is looked at by the detector about once a
second, a moving scene at the full rate). Detection on a cropped region is available but off by
default. Every choice can be overridden per camera under ``analysis:``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

_Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MotionSettings(_Strict):
    enabled: bool = Field(
        default=True,
        description="Gate the detector with cheap low-resolution motion detection in the region of interest.",
    )
    threshold: float = Field(
        default=0.0005,
        gt=0,
        lt=1,
        description="Fraction of the region's pixels (at 320 px width) that must change between two frames "
        "to count as motion.",
    )
    idle_fps: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Detection rate while nothing moves (keeps parked objects and zones up to date).",
    )
    hold_s: float = Field(
        default=1.5,
        ge=0,
        le=60,
        description="Keep detecting at the full rate this long after the last motion or moving track.",
    )


class RoiSettings(_Strict):
    enabled: bool = Field(
        default=False,
        description="Detect on the region around the lines and zones (or on box) instead of the whole "
        "frame. Off by default: measured, it lowered counting on a labelled clip (docs/edge.md).",
    )
    box: tuple[_Unit, _Unit, _Unit, _Unit] | None = Field(
        default=None,
        description="Explicit region x1, y1, x2, y2 (normalized); default: from lines and zones.",
    )
    margin: float = Field(
        default=0.12, ge=0, le=1, description="Margin around the lines and zones, as a fraction of the frame."
    )

    @model_validator(mode="after")
    def _ordered(self) -> RoiSettings:
        if self.box is not None and (self.box[0] >= self.box[2] or self.box[1] >= self.box[3]):
            raise ValueError("box must be x1 < x2 and y1 < y2")
        return self


class AnalysisSettings(_Strict):
    motion: MotionSettings = Field(default_factory=MotionSettings, description="Motion gating.")
    roi: RoiSettings = Field(default_factory=RoiSettings, description="Detection region.")
