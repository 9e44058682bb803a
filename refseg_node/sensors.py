"""The depth frames and CameraInfo the node received, paired with a colour frame by stamp.

The camera callbacks store them (:class:`SensorCache`); the worker and the tracker ask for the
depth of one colour frame (:meth:`SensorCache.depth_for`): the depth frame closest in time
within ``depth_sync_tolerance``, in metres, with the intrinsics of the latest CameraInfo, or why
there is none (``refseg_node.perception.pipeline.PairedDepth``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from refseg_node.perception.geometry import Intrinsics
from refseg_node.perception.pipeline import PairedDepth
from refseg_node.ros_io.image_conversion import ConversionError, depth_to_metres


def stamp_ns(header) -> int:
    """Return a header's stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


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

    def depth_for(self, header, settings) -> PairedDepth:
        """Return the depth (metres) and intrinsics of the colour frame of ``header``."""
        s = settings
        have_depth, depth, info = self.pair(header, s.depth_sync_tolerance)
        if not have_depth:
            return PairedDepth(reason=f"no depth image received on {s.depth_topic}")
        if depth is None:
            return PairedDepth(reason=f"no depth frame within {s.depth_sync_tolerance} s of the "
                                      "colour frame's stamp", warning="no_depth_pair")
        if info is None:
            return PairedDepth(reason=f"no CameraInfo received on {s.camera_info_topic}",
                               warning="no_camera_info")
        try:
            depth_m = depth_to_metres(depth, s.max_image_pixels)
            k = Intrinsics.from_k(info.k, info.width, info.height)
        except (ConversionError, ValueError) as err:
            return PairedDepth(reason=str(err), warning="bad_depth")
        return PairedDepth(depth_m, k)
