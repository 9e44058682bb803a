"""3D position of the primary target from an aligned depth image and pinhole intrinsics.

The target point is the target's pixel centroid back-projected at the median depth of the target's
pixels that have a valid depth (robust to holes and to the background showing through the mask
edge). When the depth is missing, invalid or not paired with the colour frame, there is no point:
a grasp planner is better served by no point than by a wrong one. Everything here is pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def check_target(depth_m: np.ndarray, region: np.ndarray, k: Intrinsics) -> str:
    """Return why a target's pixels cannot be back-projected ("" when they can).

    The one check of a target before its 3D point (:func:`target_point`) and its points
    (``cloud.target_points``): the depth aligned to the colour image, ``k`` calibrated for its
    size, the region not empty.
    """
    if depth_m.shape != region.shape:
        return (f"depth image {depth_m.shape[1::-1]} is not the size of the colour image "
                f"{region.shape[1::-1]} (not aligned)")
    if not k.matches(region.shape[1], region.shape[0]):
        return (f"camera_info is for {k.width}x{k.height} images, the colour image is "
                f"{region.shape[1]}x{region.shape[0]}")
    if not region.any():
        return "the target is empty"
    return ""


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
    unusable = check_target(depth_m, region, k)
    if unusable:
        return PointResult(None, unusable)
    area = int(region.sum())
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
