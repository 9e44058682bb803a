"""The depth frames and CameraInfo the node received, paired with a colour frame by stamp.

The camera callbacks store them (:class:`SensorCache`); the worker and the tracker ask for the
depth of one colour frame (:meth:`SensorCache.depth_for`): the depth frame closest in time
within ``depth_sync_tolerance``, in metres, with the intrinsics of the latest CameraInfo, or why
there is none (``refseg_node.perception.pipeline.PairedDepth``).

Colour and depth of one camera frame reach the node in no fixed order, and an answer can be
ready before its depth frame is: :meth:`SensorCache.waiting_until` gives the view of the cache
for one answer, whose ``depth_for`` waits (up to a deadline, ``depth_wait`` after the colour
frame arrived) for the depth frame of the frame's stamp while it can still come.
"""

from __future__ import annotations

import threading
import time
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

    def stamps(self) -> list[int]:
        """Return the stamps (ns) of the items kept, oldest first."""
        return [t for t, _ in self._items]

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
        self._arrived = threading.Condition(self._lock)   # a depth frame was added
        self._depth = StampedBuffer(depth_frames)
        self._camera_info = None
        self._depth_publishers = 0     # matched on the depth topic (the node's 1 Hz look)

    def set_depth_publishers(self, count: int) -> None:
        """Say how many depth publishers are matched: with none, no answer waits for depth."""
        with self._lock:
            self._depth_publishers = count

    def depth_stream(self) -> bool:
        """Return whether depth is there to pair with: a depth publisher or a depth frame."""
        with self._lock:
            return self._depth_publishers > 0 or len(self._depth) > 0

    def add_depth(self, msg) -> None:
        """Keep a depth image (paired with colour frames by stamp); wake who waits for it."""
        with self._arrived:
            self._depth.add(stamp_ns(msg.header), msg)
            self._arrived.notify_all()

    def set_camera_info(self, msg) -> None:
        """Keep the latest CameraInfo."""
        with self._lock:
            self._camera_info = msg

    def clear(self) -> None:
        """Forget depth frames and CameraInfo."""
        with self._lock:
            self._depth.clear()
            self._camera_info = None

    def pair(self, header, tolerance_s: float, until: float | None = None):
        """Return (any depth received, the depth frame within ``tolerance_s``, CameraInfo).

        ``until``: a ``time.monotonic()`` deadline up to which to wait for that depth frame
        while it can still come: depth frames arrive (or a depth publisher is matched), and
        none later than the colour frame's stamp (beyond ``tolerance_s``) has arrived yet (else
        its own was lost).
        """
        stamp, tolerance = stamp_ns(header), int(tolerance_s * 1e9)
        with self._arrived:
            while True:
                depth = self._depth.closest(stamp, tolerance)
                stamps = self._depth.stamps()
                if depth is not None or until is None \
                        or (not stamps and not self._depth_publishers) \
                        or (stamps and max(stamps) > stamp + tolerance):
                    break
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return bool(stamps), depth, self._camera_info

    def why_unpaired(self, header, tolerance_s: float, waited: float) -> str:
        """Return why no depth frame was paired with ``header``'s frame (after :meth:`pair`)."""
        stamp = stamp_ns(header)
        with self._lock:
            offsets = [(t - stamp) * 1e-9 for t in self._depth.stamps()]
        why = f"no depth frame within {tolerance_s:g} s of the colour frame's stamp"
        later = [dt for dt in offsets if dt > 0]
        if later:
            return (f"{why}: depth frames up to {1e3 * max(later):.0f} ms after it arrived, but "
                    f"not its own (lost on the way, or the camera stamps depth apart from colour)")
        if offsets:
            return (f"{why}: after waiting {waited:.2f} s (depth_wait) the newest depth frame is "
                    f"{-1e3 * max(offsets):.0f} ms older than the colour frame")
        return why

    def depth_for(self, header, settings, until: float | None = None) -> PairedDepth:
        """Return the depth (metres) and intrinsics of the colour frame of ``header``.

        ``until``: wait up to this ``time.monotonic()`` deadline for it (:meth:`pair`).
        """
        s = settings
        start = time.monotonic()
        have_depth, depth, info = self.pair(header, s.depth_sync_tolerance, until)
        if not have_depth:
            return PairedDepth(reason=f"no depth image received on {s.depth_topic}")
        if depth is None:
            return PairedDepth(reason=self.why_unpaired(header, s.depth_sync_tolerance,
                                                        time.monotonic() - start),
                               warning="no_depth_pair")
        if info is None:
            return PairedDepth(reason=f"no CameraInfo received on {s.camera_info_topic}",
                               warning="no_camera_info")
        try:
            depth_m = depth_to_metres(depth, s.max_image_pixels)
            k = Intrinsics.from_k(info.k, info.width, info.height)
        except (ConversionError, ValueError) as err:
            return PairedDepth(reason=str(err), warning="bad_depth")
        return PairedDepth(depth_m, k)

    def waiting_until(self, until: float | None) -> FrameSensors:
        """Return this cache as one answer sees it: ``depth_for`` waits up to ``until``."""
        return FrameSensors(self, until)


class FrameSensors:
    """The sensor cache for one colour frame's answer: its depth is waited for up to a deadline."""

    def __init__(self, cache: SensorCache, until: float | None) -> None:
        """Wait up to ``until`` (``time.monotonic()``; None: no wait) in :meth:`depth_for`."""
        self._cache, self._until = cache, until

    def depth_for(self, header, settings) -> PairedDepth:
        """Return :meth:`SensorCache.depth_for` of ``header``, waiting up to the deadline."""
        return self._cache.depth_for(header, settings, self._until)
