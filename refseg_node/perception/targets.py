"""The regions of a segmentation mask and its primary target, for a grasp planner.

A mask may cover several regions ("two men on the right"). Each connected component
(8-connectivity) is a :class:`Region` (bounding box, area, centroid, score = its mean
probability); they are ranked by summed probability (then area, then raster order), and the
first is the primary target, whose pixels the 3D point is computed from. The mask itself keeps
every region.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Region:
    """One connected region of a mask."""

    bbox: tuple[int, int, int, int]     # (x_offset, y_offset, width, height)
    area: int                           # pixels
    centroid: tuple[float, float]       # (x = column, y = row) in pixels
    score: float                        # mean probability over the region, 0..1


@dataclass(frozen=True, eq=False)
class Target:
    """The primary target of a mask; ``found`` is false when the mask is empty."""

    found: bool
    region: np.ndarray          # HxW bool, the primary target's pixels
    centroid: tuple[float, float]  # (x = column, y = row) in pixels
    bbox: tuple[int, int, int, int]  # (x_offset, y_offset, width, height)
    area: int                   # pixels of the primary target
    score: float                # mean probability over the primary target, 0..1
    num_regions: int            # connected components of the whole mask
    mask_area: int              # pixels of the whole mask
    regions: tuple[Region, ...] = ()  # ranked, primary first (at most ``max_regions``)


def mask_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Return ``(y0, y1, x0, x1)``, the rows and columns HxW bool ``mask`` spans (None if empty).

    End-exclusive, ready for slicing (``mask[y0:y1, x0:x1]``); not ``refseg_model.detection``'s
    ``mask_box`` (``xmin, ymin, xmax, ymax``, inclusive).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def no_target(shape: tuple[int, int]) -> Target:
    """Return the empty target for a mask of ``shape``."""
    return Target(False, np.zeros(shape, bool), (0.0, 0.0), (0, 0, 0, 0), 0, 0.0, 0, 0)


def primary_target(mask: np.ndarray, probs: np.ndarray, max_regions: int = 0) -> Target:
    """Find the connected component of ``mask`` with the highest summed ``probs``.

    ``mask`` is HxW bool, ``probs`` HxW float in 0..1 of the same shape. Ties go to the larger
    component, then to the first in raster order. ``regions`` lists every component in that
    order (the first ``max_regions`` of them; 0 = all).
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    probs = np.asarray(probs)
    if mask.ndim != 2 or probs.shape != mask.shape:
        raise ValueError(f"mask {mask.shape} and probs {probs.shape} must be the same HxW shape")
    box = mask_bounds(mask)
    if box is None:
        return no_target(mask.shape)
    # Label the mask's bounding box only (a target is a small part of the frame): the same
    # components in the same raster order as labelling the whole frame, at a fraction of the cost.
    y0, y1, x0, x1 = box
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1])
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        crop.view(np.uint8), connectivity=8)
    stats[:, cv2.CC_STAT_LEFT] += x0
    stats[:, cv2.CC_STAT_TOP] += y0
    centroids += (x0, y0)
    # Label 0 is the background. Sums over the mask's pixels only.
    inside = labels[crop]
    weights = np.nan_to_num(probs[y0:y1, x0:x1][crop].astype(np.float64))
    sums = np.bincount(inside, weights=weights, minlength=count)
    areas = stats[:, cv2.CC_STAT_AREA]
    # Highest sum, then largest area, then lowest label (np.lexsort: last key first; a mask of
    # noise has thousands of components, too many for a Python sort).
    labels_ = np.arange(1, count)
    ranked = labels_[np.lexsort((labels_, -areas[1:], -sums[1:]))]
    best = int(ranked[0])
    region = np.zeros(mask.shape, bool)
    region[y0:y1, x0:x1] = labels == best
    area = int(areas[best])
    x, y = stats[best, cv2.CC_STAT_LEFT], stats[best, cv2.CC_STAT_TOP]
    w, h = stats[best, cv2.CC_STAT_WIDTH], stats[best, cv2.CC_STAT_HEIGHT]
    score = float(np.clip(sums[best] / area, 0.0, 1.0))
    kept = ranked if max_regions <= 0 else ranked[:max_regions]
    scores = np.clip(sums[kept] / areas[kept], 0.0, 1.0)
    regions = tuple(
        Region(bbox=tuple(int(v) for v in stats[i, :4]), area=int(areas[i]),
               centroid=(float(centroids[i][0]), float(centroids[i][1])), score=float(sc))
        for i, sc in zip(kept, scores))
    return Target(
        found=True,
        region=region,
        centroid=(float(centroids[best][0]), float(centroids[best][1])),
        bbox=(int(x), int(y), int(w), int(h)),
        area=area,
        score=score,
        num_regions=count - 1,
        mask_area=int(areas[1:].sum()),
        regions=regions,
    )
