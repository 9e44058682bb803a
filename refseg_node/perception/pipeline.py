"""One frame through the model: picture -> mask, primary target, 3D point -> FrameResult.

No ROS: the caller decodes the frame once (``refseg_node.ros_io.image_conversion.decode_frame``)
and passes its picture and header; :func:`segment_frame` segments it with a loaded
``Segmenter`` for a query prepared when it was set (``refseg_node.language.queries``), and
:func:`carried_frame` answers it with a mask the tracker carried onto it. Both pair the frame
with depth through ``sensors.depth_for(header, settings)`` (:class:`PairedDepth`: the depth in
metres and the intrinsics, or why there are none); the depth gives the target's 3D point, its
points and its extent (``cloud``). Warnings go to the ``warn(kind, text)`` callable the node
passes (it throttles them); ``refseg_node.ros_io.messages`` turns a :class:`FrameResult` into ROS
messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from refseg_node.perception.cloud import CloudSettings, TargetGeometry, target_geometry
from refseg_node.perception.geometry import Intrinsics, target_point
from refseg_node.perception.targets import Target, no_target, primary_target
from refseg_node.perception.tracking import Carried

Warn = Callable[[str, str], None]


class NotActiveError(RuntimeError):
    """The model is not loaded (the node is not active)."""


@dataclass(frozen=True)
class FrameResult:
    """Everything the node learnt about one frame for one expression."""

    header: object                     # std_msgs/Header of the source image
    command: str
    expression: str
    mask: np.ndarray                   # HxW bool, all regions
    target: Target
    threshold: float
    unknown_words: tuple[str, ...]
    inference_time: float
    point: tuple[float, float, float] | None
    geometry: TargetGeometry | None = None  # the target's points and extent (with depth)
    reason: str = ""                   # why nothing was found, or no 3D point or no extent
    tracked: bool = False              # the mask was carried forward, not the model's
    tracked_age: int = 0               # frames since the model's answer it comes from
    probs: np.ndarray | None = None    # HxW response map of the model (None: not the model's)


@dataclass(frozen=True)
class PairedDepth:
    """The depth of one colour frame in metres with its intrinsics, or why there is none.

    ``warning``: the kind under which a missing depth is warned about ("" when it is not: no
    depth stream at all is a set-up without 3D, not a fault).
    """

    depth_m: np.ndarray | None = None
    intrinsics: Intrinsics | None = None
    reason: str = ""
    warning: str = ""


def segment_frame(segmenter, header, rgb: np.ndarray, query, settings, sensors,
                  warn: Warn) -> FrameResult:
    """Segment ``query`` (a ``PreparedQuery``) in picture ``rgb`` of the frame of ``header``.

    Raises :class:`NotActiveError` when ``segmenter`` is None.
    """
    if segmenter is None:
        raise NotActiveError("the model is not loaded: the node is not active")
    s = settings
    if s.threshold < 0:  # -1: the checkpoint's calibrated threshold (Segmenter.threshold)
        s = replace(s, threshold=segmenter.threshold)
    unknown, expression = query.unknown_words, query.expression
    if query.nothing_known:
        reason = (f"none of the words of {expression!r} are in the model's vocabulary; "
                  "nothing segmented")
        warn("unknown_words", reason)
        mask = np.zeros(rgb.shape[:2], bool)
        return _result(header, query, mask, no_target(mask.shape), rgb, 0.0, reason, s,
                       sensors, warn)
    start = time.perf_counter()
    prediction = segmenter.predict(rgb, expression, threshold=s.threshold)
    elapsed = time.perf_counter() - start
    if unknown:
        warn("unknown_words", f"words not in the model's vocabulary, ignored: "
                              f"{', '.join(unknown)} (expression {expression!r})")
    target = primary_target(prediction.mask, prediction.probs, s.max_regions)
    why = prediction.reason or f"no pixel reached the threshold {s.threshold:.2f}"
    reason = "" if target.found else (
        f"not found: nothing in the picture matches {expression!r} ({why})")
    result = _result(header, query, prediction.mask, target, rgb, elapsed, reason, s, sensors,
                     warn)
    return replace(result, probs=prediction.probs)


def carried_frame(header, rgb: np.ndarray, carried: Carried, query, settings, sensors,
                  warn: Warn) -> FrameResult:
    """Return the FrameResult of the frame of ``header`` with the mask the tracker carried onto it.

    Everything but the mask is computed afresh on this frame (picture ``rgb``): the primary
    target, its 3D point, points and extent.
    """
    target = primary_target(carried.mask, carried.probs, settings.max_regions)
    reason = "" if target.found else "the tracked mask is empty"
    result = _result(header, query, carried.mask, target, rgb, 0.0, reason, settings, sensors,
                     warn)
    return replace(result, tracked=True, tracked_age=carried.age)


def _result(header, query, mask, target, rgb, elapsed, reason, settings, sensors,
            warn) -> FrameResult:
    s = settings
    point, geometry = None, None
    if target.found:
        location = locate_target(target, sensors.depth_for(header, s), s, warn, rgb)
        point, geometry, reason = location.point, location.geometry, reason or location.reason
    return FrameResult(
        header=header, command=query.command, expression=query.expression, mask=mask,
        target=target, threshold=s.threshold, unknown_words=query.unknown_words,
        inference_time=elapsed, point=point, geometry=geometry, reason=reason)


@dataclass(frozen=True)
class Location:
    """Where a target is in 3D: its point, its points and extent, and why not when missing."""

    point: tuple[float, float, float] | None
    geometry: TargetGeometry | None
    reason: str = ""                   # why no point or no extent ("" = both)


def cloud_settings(settings) -> CloudSettings:
    """Return the :class:`CloudSettings` of the node's ``cloud_*`` parameters."""
    return CloudSettings(erode_px=settings.cloud_erode_px,
                         outlier_sigmas=settings.cloud_outlier_sigmas,
                         stride=settings.cloud_stride, voxel=settings.cloud_voxel,
                         min_points=settings.cloud_min_points)


def locate_target(target: Target, depth: PairedDepth, settings, warn: Warn,
                  rgb: np.ndarray | None = None) -> Location:
    """Return the 3D point, points and extent of ``target`` from its frame's paired depth."""
    if depth.depth_m is None:
        if depth.warning:
            warn(depth.warning, f"no 3D point: {depth.reason}")
        return Location(None, None, depth.reason)
    depth_m, k = depth.depth_m, depth.intrinsics
    result = target_point(depth_m, target.region, k, target.centroid)
    if result.point is None:
        warn("invalid_depth", f"no 3D point: {result.reason}")
        return Location(None, None, result.reason)
    colours = rgb if rgb is not None and rgb.shape[:2] == depth_m.shape else None
    geometry = target_geometry(depth_m, target.region, k, colours, cloud_settings(settings))
    return Location(result.point, geometry, geometry.reason)
