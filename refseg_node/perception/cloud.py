"""The target's 3D points and extent, from its mask, an aligned depth image and the intrinsics.

A grasp planner needs the target's points and their extent, not only a centroid. Pixels at the
mask's edge mix the target's depth with the background's, so the region is first eroded, then
depth outliers are dropped with a robust distance from the region's median depth (the median
absolute deviation, MAD), and only then are the pixels back-projected with the pinhole ``K``.
The extent is robust too: its centre is the per-axis median of the kept points, its
axis-aligned size the span between the 2nd and 98th percentiles, and its principal axes the
eigenvectors of the points' covariance (PCA), largest spread first. Both choices shorten the
span by construction, so the sizes are corrected for them: a percentile span is divided by the
share of a uniform spread it covers (0.96: pixel rows and columns sample the surface evenly), and
what the erosion took off the target's span across the view (in pixels, measured on the pixels
with a valid depth: none where the depth, not the mask, bounds the target) is added back at the
points' median depth. Everything here is pure numpy
and OpenCV; :mod:`refseg_node.ros_io.pointcloud2` turns the points into a
``sensor_msgs/PointCloud2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from refseg_node.perception.geometry import Intrinsics, check_target

# Percentiles of the robust span (the Segmentation message documents the same numbers).
LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0
# The share of a uniform spread between those percentiles: span / share estimates the full span.
UNIFORM_SHARE = (HIGH_PERCENTILE - LOW_PERCENTILE) / 100.0
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class CloudSettings:
    """How the target's points are chosen.

    ``erode_px``: pixels taken off the region's border before back-projection (0 = none);
    ``outlier_sigmas``: a point is kept when its depth is within this many robust standard
    deviations (MAD x 1.4826) of the region's median depth; ``min_depth_band``: metres that band
    is at least wide (a flat, noise-free surface has a MAD of 0); ``stride``: keep every n-th
    pixel in rows and columns (1 = all); ``voxel``: metres of a voxel grid that merges points
    (their mean; 0 = none); ``min_points``: fewer kept points than this give no extent.
    """

    erode_px: int = 2
    outlier_sigmas: float = 3.0
    min_depth_band: float = 0.02
    stride: int = 1
    voxel: float = 0.0
    min_points: int = 30

    def __post_init__(self):
        """Refuse values that cannot work."""
        if self.erode_px < 0:
            raise ValueError(f"erode_px must be >= 0, got {self.erode_px}")
        if not self.outlier_sigmas > 0:
            raise ValueError(f"outlier_sigmas must be > 0, got {self.outlier_sigmas}")
        if self.min_depth_band < 0:
            raise ValueError(f"min_depth_band must be >= 0, got {self.min_depth_band}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.voxel < 0:
            raise ValueError(f"voxel must be >= 0, got {self.voxel}")
        if self.min_points < 3:
            raise ValueError(f"min_points must be >= 3 (a PCA needs points), got "
                             f"{self.min_points}")


@dataclass(frozen=True)
class TargetPoints:
    """The kept points (Nx3 float32 metres, camera optical frame) and their colours (Nx3 uint8).

    ``reason`` says why there are none (or too few for an extent); ``""`` otherwise.
    ``eroded`` tells whether the eroded region was used (a region too thin to erode is used whole);
    ``trimmed_px``: how much shorter (columns, rows) the erosion made the 2nd..98th percentile
    span of the region's pixels with a valid depth.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    reason: str = ""
    eroded: bool = True
    trimmed_px: tuple[float, float] = (0.0, 0.0)

    def __len__(self) -> int:
        """Return the number of points."""
        return int(self.xyz.shape[0])


@dataclass(frozen=True)
class Extent:
    """The 3D extent of a set of points (metres, their frame).

    ``center``: per-axis median; ``size``: per-axis 2nd..98th percentile span over
    :data:`UNIFORM_SHARE`, plus ``margin``; ``axes``: 3x3, row i the unit principal axis i
    (largest spread first, right-handed); ``principal_sizes``: the same along each axis (the
    margin projected on it); ``box_center``: the centre of the box those spans make (for
    drawing it; the robust centre of the target is ``center``).
    """

    center: np.ndarray
    size: np.ndarray
    axes: np.ndarray
    principal_sizes: np.ndarray
    box_center: np.ndarray
    num_points: int


def erode_region(region: np.ndarray, pixels: int) -> np.ndarray:
    """Return ``region`` (HxW bool) with ``pixels`` taken off its border (a disc of that radius)."""
    region = np.ascontiguousarray(region, dtype=bool)
    if pixels <= 0:
        return region.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    # Outside the image counts as not the region: a target cut by the border is eroded there too.
    eroded = cv2.erode(region.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
                       borderValue=0)
    return eroded.astype(bool)


def robust_depth_band(z: np.ndarray, sigmas: float, min_band: float) -> tuple[float, float]:
    """Return ``(median, half width)`` of the depths kept around the median of ``z``."""
    median = float(np.median(z))
    mad = float(np.median(np.abs(z - median)))
    return median, max(sigmas * MAD_TO_SIGMA * mad, min_band)


def voxel_downsample(xyz: np.ndarray, rgb: np.ndarray, voxel: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Merge the points of each ``voxel``-sized cube into their mean (colours averaged too)."""
    if voxel <= 0 or len(xyz) == 0:
        return xyz, rgb
    keys = np.floor(xyz.astype(np.float64) / voxel).astype(np.int64)
    _, first, inverse, counts = np.unique(keys, axis=0, return_index=True,
                                          return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    # Keep the voxels in the order of their first point (row-major pixel order): deterministic.
    order = np.argsort(first, kind="stable")
    means = np.empty((len(counts), 3))
    colours = np.empty((len(counts), 3))
    for axis in range(3):
        means[:, axis] = np.bincount(inverse, weights=xyz[:, axis], minlength=len(counts))
        colours[:, axis] = np.bincount(inverse, weights=rgb[:, axis], minlength=len(counts))
    means /= counts[:, None]
    colours /= counts[:, None]
    return (means[order].astype(np.float32),
            np.clip(np.rint(colours[order]), 0, 255).astype(np.uint8))


def target_points(depth_m: np.ndarray, region: np.ndarray, k: Intrinsics,
                  rgb: np.ndarray | None = None,
                  settings: CloudSettings = CloudSettings()) -> TargetPoints:
    """Back-project the target's reliable pixels (see the module's docstring).

    ``depth_m``: HxW float metres, NaN or <= 0 where there is no depth, aligned to the colour
    image; ``region``: HxW bool target; ``rgb``: HxWx3 uint8 colours of the points (grey when
    None). Returns the points in row-major pixel order (after optional stride and voxel
    subsampling) with a ``reason`` when fewer than ``settings.min_points`` remain.
    """
    depth_m = np.asarray(depth_m)
    region = np.asarray(region, dtype=bool)
    none = TargetPoints(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    if rgb is not None and np.asarray(rgb).shape[:2] != region.shape:
        raise ValueError(f"rgb {np.asarray(rgb).shape} is not the size of the region "
                         f"{region.shape}")
    unusable = check_target(depth_m, region, k)
    if unusable:
        return _with_reason(none, unusable)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    eroded = erode_region(region, settings.erode_px) & valid
    used_eroded = int(eroded.sum()) >= settings.min_points
    chosen = eroded if used_eroded else region & valid
    rows, cols = np.nonzero(chosen)
    trimmed = _trimmed_px(region & valid, cols, rows) if used_eroded else (0.0, 0.0)
    if settings.stride > 1:
        on_grid = (rows % settings.stride == 0) & (cols % settings.stride == 0)
        rows, cols = rows[on_grid], cols[on_grid]
    if rows.size == 0:
        return _with_reason(none, f"none of the target's {int(region.sum())} pixels has a "
                                  "valid depth")
    z = depth_m[rows, cols].astype(np.float64)
    median, band = robust_depth_band(z, settings.outlier_sigmas, settings.min_depth_band)
    keep = np.abs(z - median) <= band
    rows, cols, z = rows[keep], cols[keep], z[keep]
    xyz = np.empty((z.size, 3), np.float32)
    xyz[:, 0] = (cols - k.cx) * z / k.fx
    xyz[:, 1] = (rows - k.cy) * z / k.fy
    xyz[:, 2] = z
    colours = (np.asarray(rgb)[rows, cols, :3].astype(np.uint8) if rgb is not None
               else np.full((z.size, 3), 128, np.uint8))
    xyz, colours = voxel_downsample(xyz, colours, settings.voxel)
    points = TargetPoints(xyz, colours, "", used_eroded, trimmed)
    if len(points) < settings.min_points:
        return _with_reason(points, f"only {len(points)} of the target's {int(region.sum())} "
                                    f"pixels gave reliable 3D points (need "
                                    f"{settings.min_points})")
    return points


def _with_reason(points: TargetPoints, reason: str) -> TargetPoints:
    return TargetPoints(points.xyz, points.rgb, reason, points.eroded, points.trimmed_px)


def _trimmed_px(whole: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """Return how far the (columns, rows) percentile span of eroded pixels is below ``whole``'s."""
    def spans(cols, rows):
        return np.ptp(np.percentile(np.stack([cols, rows]), [LOW_PERCENTILE, HIGH_PERCENTILE],
                                    axis=1), axis=0)
    whole_rows, whole_cols = np.nonzero(whole)
    shorter = np.maximum(spans(whole_cols, whole_rows) - spans(cols, rows), 0.0)
    return float(shorter[0]), float(shorter[1])


def principal_axes(xyz: np.ndarray) -> np.ndarray:
    """Return the 3x3 unit principal axes of Nx3 points as rows, largest spread first.

    Signs are fixed so that results are reproducible: each of the first two axes has its
    largest component positive, and the third is their cross product (a right-handed frame).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    centred = xyz - xyz.mean(axis=0)
    cov = centred.T @ centred / max(len(xyz) - 1, 1)
    values, vectors = np.linalg.eigh(cov)           # ascending eigenvalues, columns
    axes = vectors[:, np.argsort(values)[::-1]].T   # rows, descending
    for i in range(2):
        if axes[i][np.argmax(np.abs(axes[i]))] < 0:
            axes[i] = -axes[i]
    axes[2] = np.cross(axes[0], axes[1])
    return axes / np.linalg.norm(axes, axis=1, keepdims=True)


def robust_span(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return the (2nd, 98th) percentiles of ``values`` along ``axis``."""
    lo, hi = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=axis)
    return lo, hi


def extent(xyz: np.ndarray, margin=(0.0, 0.0, 0.0)) -> Extent:
    """Return the robust :class:`Extent` of Nx3 points (at least 3, not all on one line).

    ``margin``: metres per axis x y z added to the sizes (what the erosion took off the region).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    margin = np.asarray(margin, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) < 3:
        raise ValueError(f"extent needs Nx3 points with N >= 3, got shape {xyz.shape}")
    center = np.median(xyz, axis=0)
    lo, hi = robust_span(xyz)
    axes = principal_axes(xyz)
    mean = xyz.mean(axis=0)
    projected = (xyz - mean) @ axes.T
    plo, phi = robust_span(projected)
    box_center = mean + ((plo + phi) / 2) @ axes
    return Extent(center=center, size=(hi - lo) / UNIFORM_SHARE + margin, axes=axes,
                  principal_sizes=(phi - plo) / UNIFORM_SHARE + np.abs(axes) @ margin,
                  box_center=box_center, num_points=len(xyz))


@dataclass(frozen=True)
class TargetGeometry:
    """The points of a target and their extent (``None`` with ``reason`` when too few)."""

    points: TargetPoints
    extent: Extent | None
    reason: str = ""


def target_geometry(depth_m: np.ndarray, region: np.ndarray, k: Intrinsics,
                    rgb: np.ndarray | None = None,
                    settings: CloudSettings = CloudSettings()) -> TargetGeometry:
    """Return :func:`target_points` and, when there are enough, their :func:`extent`."""
    points = target_points(depth_m, region, k, rgb, settings)
    if points.reason:
        return TargetGeometry(points, None, points.reason)
    spread = float(np.ptp(points.xyz, axis=0).max()) if len(points) else 0.0
    if not math.isfinite(spread) or spread <= 0:
        return TargetGeometry(points, None, "the target's points are all at one place")
    # What the erosion took off across the view, at the target's depth.
    z = float(np.median(points.xyz[:, 2]))
    margin = np.array([points.trimmed_px[0] * z / k.fx, points.trimmed_px[1] * z / k.fy, 0.0])
    return TargetGeometry(points, extent(points.xyz, margin))
