"""One frame through the model: image message -> mask, primary target, 3D point -> FrameResult.

No ROS graph: :class:`SensorCache` keeps the depth frames and the CameraInfo the node received,
:func:`segment_frame` segments one colour frame with a loaded ``Segmenter`` and pairs it with
depth; :func:`carried_frame` does the same with a mask the tracker carried onto the frame. The
paired depth gives the target's 3D point, its points and its extent (``cloud``).
Warnings go to the ``warn(kind, text)`` callable the node passes (it throttles them);
``messages`` turns the result into ROS messages and ``outputs`` publishes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sensor_msgs.msg import CompressedImage

from refseg_node.language.queries import nothing_known
from refseg_node.perception.cloud import CloudSettings, TargetGeometry, target_geometry
from refseg_node.perception.geometry import Intrinsics, StampedBuffer, target_point
from refseg_node.perception.targets import Target, no_target, primary_target
from refseg_node.perception.tracking import Carried
from refseg_node.ros_io import messages
from refseg_node.ros_io.image_conversion import (
    ConversionError,
    compressed_to_rgb,
    depth_to_metres,
    to_rgb,
)

Warn = Callable[[str, str], None]


class NotActiveError(RuntimeError):
    """The model is not loaded (the node is not active)."""


def stamp_ns(header) -> int:
    """Return a header's stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class SensorCache:
    """The latest depth frames (by stamp) and CameraInfo, shared by callbacks and the worker."""

    def __init__(self, depth_frames: int = 30) -> None:
        """Keep up to ``depth_frames`` depth frames."""
        self._lock = threading.Lock()
        self._depth = StampedBuffer(depth_frames)
        self._camera_info = None

    def add_depth(self, msg) -> None:
        """Keep a depth image (paired with colour frames by stamp)."""
        with self._lock:
            self._depth.add(stamp_ns(msg.header), msg)

    def set_camera_info(self, msg) -> None:
        """Keep the latest CameraInfo."""
        with self._lock:
            self._camera_info = msg

    def clear(self) -> None:
        """Forget depth frames and CameraInfo."""
        with self._lock:
            self._depth.clear()
            self._camera_info = None

    def pair(self, header, tolerance_s: float):
        """Return (any depth received, the depth frame within ``tolerance_s``, CameraInfo)."""
        with self._lock:
            return (len(self._depth) > 0,
                    self._depth.closest(stamp_ns(header), int(tolerance_s * 1e9)),
                    self._camera_info)


def segment_frame(segmenter, image, command: str, expression: str, settings,
                  sensors: SensorCache, warn: Warn):
    """Segment ``expression`` in ``image`` (Image or CompressedImage); return (FrameResult, rgb).

    Raises ``ConversionError`` for an image that cannot be used and :class:`NotActiveError`
    when ``segmenter`` is None.
    """
    s = settings
    if isinstance(image, CompressedImage):
        rgb = compressed_to_rgb(image, s.max_image_pixels)
    else:
        rgb = to_rgb(image, s.max_image_pixels)
    if segmenter is None:
        raise NotActiveError("the model is not loaded: the node is not active")
    if s.threshold < 0:  # -1: the checkpoint's calibrated threshold (Segmenter.threshold)
        s = settings = replace(s, threshold=segmenter.threshold)
    unknown = tuple(segmenter.unknown_words(expression))
    note, elapsed = "", 0.0
    if nothing_known(expression, unknown):
        note = (f"none of the words of {expression!r} are in the model's vocabulary; "
                "nothing segmented")
        warn("unknown_words", note)
        mask, probs = np.zeros(rgb.shape[:2], bool), None
        target = no_target(mask.shape)
    else:
        start = time.perf_counter()
        prediction = segmenter.predict(rgb, expression, threshold=s.threshold)
        elapsed = time.perf_counter() - start
        mask, probs = prediction.mask, prediction.probs
        target = primary_target(prediction.mask, prediction.probs, s.max_regions)
        if unknown:
            warn("unknown_words", f"words not in the model's vocabulary, ignored: "
                                  f"{', '.join(unknown)} (expression {expression!r})")
    result = _result(image.header, command, expression, mask, target, rgb, unknown, elapsed,
                     note, settings, sensors, warn)
    return replace(result, probs=probs), rgb


def carried_frame(image, carried: Carried, command: str, expression: str, settings,
                  sensors: SensorCache, warn: Warn, unknown: tuple[str, ...] = (),
                  rgb: np.ndarray | None = None):
    """Return (FrameResult, rgb) of frame ``image`` with the mask the tracker carried onto it.

    Everything but the mask is computed afresh on this frame: the primary target, its 3D point,
    points and extent. ``rgb`` is the frame's picture when the caller has it already. Raises
    ``ConversionError`` for an image that cannot be used.
    """
    if rgb is None:
        rgb = to_rgb(image, settings.max_image_pixels)
    target = primary_target(carried.mask, carried.probs, settings.max_regions)
    note = "" if target.found else "the tracked mask is empty"
    result = _result(image.header, command, expression, carried.mask, target, rgb, unknown, 0.0,
                     note, settings, sensors, warn)
    return replace(result, tracked=True, tracked_age=carried.age), rgb


def _result(header, command, expression, mask, target, rgb, unknown, elapsed, note, settings,
            sensors, warn) -> messages.FrameResult:
    s = settings
    point, geometry, no_3d = None, None, note
    if target.found:
        location = locate_target(header, target, s, sensors, warn, rgb)
        point, geometry = location.point, location.geometry
        note = note or location.note
        no_3d = location.no_3d_reason
    elif not note:
        note = no_3d = f"no pixel passed the threshold {s.threshold}"
    return messages.FrameResult(
        header=header, command=command, expression=expression, mask=mask, target=target,
        threshold=s.threshold, unknown_words=unknown, inference_time=elapsed, point=point,
        note=note, geometry=geometry, no_3d_reason=no_3d)


@dataclass(frozen=True)
class Location:
    """Where a target is in 3D: its point, its points and extent, and why not when missing.

    ``note`` is the reason for no point that the node reports (empty when there is no depth
    stream at all); ``no_3d_reason`` the reason for no point or no extent, always said.
    """

    point: tuple[float, float, float] | None
    geometry: TargetGeometry | None
    note: str = ""
    no_3d_reason: str = ""


def cloud_settings(settings) -> CloudSettings:
    """Return the :class:`CloudSettings` of the node's ``cloud_*`` parameters."""
    return CloudSettings(erode_px=settings.cloud_erode_px,
                         outlier_sigmas=settings.cloud_outlier_sigmas,
                         stride=settings.cloud_stride, voxel=settings.cloud_voxel,
                         min_points=settings.cloud_min_points)


def locate_target(header, target: Target, settings, sensors: SensorCache, warn: Warn,
                  rgb: np.ndarray | None = None) -> Location:
    """Return the 3D point, points and extent of ``target`` from the paired depth frame."""
    s = settings
    have_depth, depth, info = sensors.pair(header, s.depth_sync_tolerance)
    if not have_depth:
        return Location(None, None, "", f"no depth image received on {s.depth_topic}")
    if depth is None:
        why = f"no depth frame within {s.depth_sync_tolerance} s of the colour frame's stamp"
        warn("no_depth_pair", f"no 3D point: {why}")
        return Location(None, None, why, why)
    if info is None:
        why = f"no CameraInfo received on {s.camera_info_topic}"
        warn("no_camera_info", f"no 3D point: {why}")
        return Location(None, None, why, why)
    try:
        depth_m = depth_to_metres(depth, s.max_image_pixels)
        k = Intrinsics.from_k(info.k, info.width, info.height)
    except (ConversionError, ValueError) as err:
        warn("bad_depth", f"no 3D point: {err}")
        return Location(None, None, str(err), str(err))
    result = target_point(depth_m, target.region, k, target.centroid)
    if result.point is None:
        warn("invalid_depth", f"no 3D point: {result.reason}")
        return Location(None, None, result.reason, result.reason)
    colours = rgb if rgb is not None and rgb.shape[:2] == depth_m.shape else None
    geometry = target_geometry(depth_m, target.region, k, colours, cloud_settings(s))
    return Location(result.point, geometry, "", geometry.reason)
