"""Camera calibration: image -> ground plane (metres) homography, speeds in km/h and map positions.

Without a calibration nothing here is used and no speed is reported: a guessed speed is worse than none.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from citywatch.site import Calibration
from edge.analytics.tracks import TrackState

_EARTH_M = 6_371_008.8


class GroundPlane:
    """Maps normalized image points to metres east/north of the first world point, and to lat/lon."""

    def __init__(self, calibration: Calibration) -> None:
        self.lat0 = calibration.world[0].lat
        self.lon0 = calibration.world[0].lon
        self._kx = math.cos(math.radians(self.lat0)) * _EARTH_M * math.pi / 180.0
        self._ky = _EARTH_M * math.pi / 180.0
        src = np.array(calibration.image, dtype=np.float64)
        dst = np.array(
            [((p.lon - self.lon0) * self._kx, (p.lat - self.lat0) * self._ky) for p in calibration.world],
            dtype=np.float64,
        )
        self._h = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(
            np.float64
        )

    def to_metres(self, x: float, y: float) -> tuple[float, float]:
        v = self._h @ np.array([x, y, 1.0])
        return float(v[0] / v[2]), float(v[1] / v[2])

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        east, north = self.to_metres(x, y)
        return self.lat0 + north / self._ky, self.lon0 + east / self._kx

    def speed_kmh(self, track: TrackState, window: float = 1.0) -> float | None:
        """Ground speed over the last ``window`` seconds of the track, if it has been seen that long."""
        if len(track.anchors) < 2:
            return None
        t1, x1, y1 = track.anchors[-1]
        for t0, x0, y0 in reversed(track.anchors):
            if t1 - t0 >= window:
                e0, n0 = self.to_metres(x0, y0)
                e1, n1 = self.to_metres(x1, y1)
                return math.hypot(e1 - e0, n1 - n0) / (t1 - t0) * 3.6
        return None
