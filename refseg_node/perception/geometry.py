"""3D position of the primary target from an aligned depth image and pinhole intrinsics.

The target point is the target's pixel centroid back-projected at the median depth of the target's
pixels that have a valid depth (robust to holes and to the background showing through the mask
edge). When the depth is missing, invalid or not paired with the colour frame, there is no point:
a grasp planner is better served by no point than by a wrong one. Everything here is pure numpy.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

# A target needs this many pixels with valid depth, and this share of its pixels, for a 3D point.
DEFAULT_MIN_VALID_PIXELS = 10
DEFAULT_MIN_VALID_FRACTION = 0.2


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics (the ``K`` of ``sensor_msgs/CameraInfo``) and the calibrated size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0   # 0 = unknown
    height: int = 0

    @classmethod
    def from_k(cls, k, width: int = 0, height: int = 0) -> Intrinsics:
        """Build from the 9 row-major values of ``K`` = [fx 0 cx; 0 fy cy; 0 0 1].

        Raises ``ValueError`` when K is not a usable pinhole matrix (for example all zeros, which a
        camera publishes when it is not calibrated).
        """
        k = [float(v) for v in k]
        if len(k) != 9:
            raise ValueError(f"K must have 9 values, got {len(k)}")
        fx, cx, fy, cy = k[0], k[2], k[4], k[5]
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
            raise ValueError(f"K is not a calibrated pinhole matrix: fx={fx}, fy={fy}, "
                             f"cx={cx}, cy={cy}")
        return cls(fx, fy, cx, cy, int(width), int(height))

    def matches(self, width: int, height: int) -> bool:
        """Tell whether these intrinsics were calibrated for images of ``width`` x ``height``."""
        return (self.width, self.height) in ((0, 0), (width, height))


def back_project(u: float, v: float, z: float, k: Intrinsics) -> tuple[float, float, float]:
    """Return the 3D point (metres, optical frame: x right, y down, z forward) of pixel (u, v)."""
    return ((u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z)


@dataclass(frozen=True)
class PointResult:
    """A 3D target point, or ``None`` with the reason why there is none."""

    point: tuple[float, float, float] | None
    reason: str = ""
    valid_pixels: int = 0


def target_point(
    depth_m: np.ndarray,
    region: np.ndarray,
    k: Intrinsics,
    centroid: tuple[float, float] | None = None,
    min_valid_pixels: int = DEFAULT_MIN_VALID_PIXELS,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
) -> PointResult:
    """Back-project the median valid depth of ``region`` at its centroid.

    ``depth_m`` is HxW float metres with NaN (or <= 0) where there is no depth, aligned to the
    colour image; ``region`` the HxW bool target. ``centroid`` (x, y) defaults to the region's
    pixel centroid.
    """
    depth_m = np.asarray(depth_m)
    region = np.asarray(region, dtype=bool)
    if depth_m.shape != region.shape:
        return PointResult(None, f"depth image {depth_m.shape[1::-1]} is not the size of the "
                                 f"colour image {region.shape[1::-1]} (not aligned)")
    if not k.matches(region.shape[1], region.shape[0]):
        return PointResult(None, f"camera_info is for {k.width}x{k.height} images, the colour "
                                 f"image is {region.shape[1]}x{region.shape[0]}")
    area = int(region.sum())
    if area == 0:
        return PointResult(None, "the target is empty")
    values = depth_m[region].astype(np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    needed = max(min_valid_pixels, math.ceil(min_valid_fraction * area))
    if values.size < needed:
        return PointResult(None, f"only {values.size} of the target's {area} pixels have a valid "
                                 f"depth (need {needed})", int(values.size))
    z = float(np.median(values))
    if centroid is None:
        rows, cols = np.nonzero(region)
        centroid = (float(cols.mean()), float(rows.mean()))
    return PointResult(back_project(centroid[0], centroid[1], z, k), "", int(values.size))


T = TypeVar("T")


class StampedBuffer(Generic[T]):
    """The last few items keyed by timestamp (ns), to pair depth frames with colour frames."""

    def __init__(self, size: int = 30):
        """Keep at most ``size`` items (oldest dropped first)."""
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._items: deque[tuple[int, T]] = deque(maxlen=size)

    def __len__(self) -> int:
        """Return how many items are kept."""
        return len(self._items)

    def add(self, stamp_ns: int, item: T) -> None:
        """Keep ``item`` taken at ``stamp_ns``."""
        self._items.append((int(stamp_ns), item))

    def clear(self) -> None:
        """Forget every item."""
        self._items.clear()

    def closest(self, stamp_ns: int, tolerance_ns: int) -> T | None:
        """Return the item closest in time to ``stamp_ns``, if within ``tolerance_ns``."""
        best, best_dt = None, None
        for t, item in list(self._items):
            dt = abs(t - int(stamp_ns))
            if dt <= tolerance_ns and (best_dt is None or dt < best_dt):
                best, best_dt = item, dt
        return best
