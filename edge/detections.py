"""The one normalized type every edge stage speaks: tracked detections of one frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Raw detections of one image: rows of x1, y1, x2, y2, confidence, class id (pixels of that image).
BoxArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Detections:
    """Columns of equal length N. Boxes in pixels; ``tracker_id`` is -1 for untracked boxes."""

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray
    class_names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def empty(cls, class_names: dict[int, str] | None = None) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), dtype=np.float64),
            confidence=np.zeros(0, dtype=np.float64),
            class_id=np.zeros(0, dtype=np.int64),
            tracker_id=np.zeros(0, dtype=np.int64),
            class_names=class_names or {},
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def anchors(self, width: int, height: int) -> FloatArray:
        """Bottom centre of each box (where it touches the ground), normalized to 0..1."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2.0 / width
        y = self.xyxy[:, 3] / height
        return np.stack([x, y], axis=1) if len(self) else np.zeros((0, 2))

    def class_name(self, i: int) -> str:
        cid = int(self.class_id[i])
        return self.class_names.get(cid, str(cid))
