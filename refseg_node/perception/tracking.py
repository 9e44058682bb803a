"""Carry a mask forward onto new frames while the model is busy (sparse optical flow, OpenCV).

The model is often slower than the camera (the ``paper`` preset takes about a second a frame on
a CPU). Between two of its answers, :class:`MaskTracker` moves the last answer with the image:
corners (``cv2.goodFeaturesToTrack``) on and around the mask are followed from frame to frame by
pyramidal Lucas-Kanade flow (``cv2.calcOpticalFlowPyrLK``), checked forwards and backwards, and a
similarity transform (rotation, uniform scale, translation) is fitted to them with RANSAC
(``cv2.estimateAffinePartial2D``). The transforms are chained from the model's frame (the key
frame), and the key frame's mask and response map are warped once by the chain, so a mask does
not blur from being resampled frame after frame. The track is lost (the tracker says why and
forgets the mask) when too few corners agree, when the transform jumps, when the mask leaves the
picture or when it is older than ``max_age`` frames. Pure OpenCV and numpy; no ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from refseg_node.perception.targets import mask_bounds


@dataclass(frozen=True)
class TrackerSettings:
    """Knobs of :class:`MaskTracker` (pixels refer to the image the tracker is given).

    ``margin_px``: corners are taken from the mask dilated by this many pixels (its outline is
    where most corners are); ``min_features``: fewer agreeing corners lose the track;
    ``max_age``: frames after the key frame when the track is dropped (0 = never);
    ``max_step_scale``: a frame-to-frame scale change beyond this factor loses the track.
    """

    max_features: int = 200
    quality: float = 0.01
    min_distance: int = 5
    margin_px: int = 8
    min_features: int = 10
    max_age: int = 0
    forward_backward_px: float = 1.0
    ransac_px: float = 2.0
    window_px: int = 21
    pyramid_levels: int = 3
    max_step_scale: float = 1.25

    def __post_init__(self):
        """Refuse values that cannot work."""
        if self.max_features < 4 or self.min_features < 3:
            raise ValueError("a similarity fit needs max_features >= 4 and min_features >= 3")
        if self.min_features > self.max_features:
            raise ValueError(f"min_features ({self.min_features}) > max_features "
                             f"({self.max_features})")
        if self.margin_px < 0 or self.max_age < 0 or self.pyramid_levels < 0:
            raise ValueError("margin_px, max_age and pyramid_levels must be >= 0")
        if self.window_px < 5 or self.max_step_scale <= 1.0:
            raise ValueError("window_px must be >= 5 and max_step_scale > 1")


@dataclass(frozen=True)
class TrackResult:
    """The mask carried onto one frame, or ``mask`` None with the reason the track was lost."""

    mask: np.ndarray | None       # HxW bool
    probs: np.ndarray | None      # HxW float32, the key frame's response map warped along
    age: int                      # frames since the key frame
    transform: np.ndarray | None  # 2x3 key frame -> this frame
    features: int = 0             # corners that agreed with the transform
    reason: str = ""


# Pixels beyond a corner that its response reads: 1 (3x3 Sobel) + 2 (5x5 block); one spare.
CORNER_REACH_PX = 4


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Return the uint8 grey image of HxWx3 RGB (or HxW grey, returned as is)."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def _as3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


class MaskTracker:
    """Follow a key frame's mask over the next frames (see the module's docstring)."""

    def __init__(self, settings: TrackerSettings = TrackerSettings()):
        """Start with no mask (:meth:`start` gives it one)."""
        self.settings = settings
        self._key_mask: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the mask."""
        self._key_mask = None
        self._key_probs = None
        self._gray = None
        self._points = None
        self._chain = np.eye(3)
        self._mask = None
        self.age = 0

    @property
    def active(self) -> bool:
        """Tell whether there is a mask to carry forward."""
        return self._key_mask is not None

    def start(self, gray: np.ndarray, mask: np.ndarray, probs: np.ndarray | None = None) -> bool:
        """Take the model's ``mask`` (HxW bool) on frame ``gray`` (HxW uint8) as the key frame.

        Returns False (and keeps no mask) when the mask offers too few corners to track.
        """
        gray = to_gray(gray)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != gray.shape:
            raise ValueError(f"mask {mask.shape} is not the size of the frame {gray.shape}")
        self.reset()
        points = self._corners(gray, mask)
        if points is None or len(points) < self.settings.min_features:
            return False
        self._key_mask = mask.astype(np.float32)
        self._key_probs = (np.asarray(probs, dtype=np.float32) if probs is not None
                           else self._key_mask.copy())
        self._gray, self._points, self._mask = gray, points, mask
        return True

    def _corners(self, gray: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        s = self.settings
        box = mask_bounds(mask)
        if box is None:
            return None
        # Work on the mask's box grown by the margin and by the detector's reach (3x3 Sobel,
        # 5x5 block): the same corners as on the whole frame, for the price of the box.
        pad = max(s.margin_px, 0) + CORNER_REACH_PX
        height, width = mask.shape
        y0, y1 = max(box[0] - pad, 0), min(box[1] + pad, height)
        x0, x1 = max(box[2] - pad, 0), min(box[3] + pad, width)
        region = mask[y0:y1, x0:x1].astype(np.uint8)
        if s.margin_px > 0:
            size = 2 * s.margin_px + 1
            region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                  (size, size)))
        corners = cv2.goodFeaturesToTrack(np.ascontiguousarray(gray[y0:y1, x0:x1]),
                                          s.max_features, s.quality, s.min_distance,
                                          mask=region * 255, blockSize=5)
        if corners is not None:
            corners += np.array([x0, y0], np.float32)
        return corners

    def _lose(self, reason: str) -> TrackResult:
        age = self.age + 1
        self.reset()
        return TrackResult(None, None, age, None, 0, reason)

    def step(self, gray: np.ndarray) -> TrackResult:
        """Carry the mask onto the next frame ``gray`` (any later frame; closer is better)."""
        if not self.active:
            return TrackResult(None, None, 0, None, 0, "no mask to track")
        s = self.settings
        gray = to_gray(gray)
        if gray.shape != self._gray.shape:
            return self._lose(f"the frame size changed from {self._gray.shape[::-1]} to "
                              f"{gray.shape[::-1]}")
        if s.max_age and self.age + 1 > s.max_age:
            return self._lose(f"the mask is {s.max_age} frames old (max_age)")
        lk = {"winSize": (s.window_px, s.window_px), "maxLevel": s.pyramid_levels,
              "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
        new, ok, _ = cv2.calcOpticalFlowPyrLK(self._gray, gray, self._points, None, **lk)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray, self._gray, new, None, **lk)
        error = np.linalg.norm((back - self._points).reshape(-1, 2), axis=1)
        good = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (error <= s.forward_backward_px)
        if int(good.sum()) < s.min_features:
            return self._lose(f"only {int(good.sum())} corners followed (need "
                              f"{s.min_features})")
        old_pts, new_pts = self._points[good], new[good]
        step, inliers = cv2.estimateAffinePartial2D(old_pts, new_pts, method=cv2.RANSAC,
                                                    ransacReprojThreshold=s.ransac_px)
        agreeing = int(inliers.sum()) if inliers is not None else 0
        if step is None or agreeing < s.min_features:
            return self._lose(f"only {agreeing} corners agree on one motion (need "
                              f"{s.min_features})")
        scale = math.hypot(step[0, 0], step[1, 0])
        if not math.isfinite(scale) or not 1 / s.max_step_scale <= scale <= s.max_step_scale:
            return self._lose(f"the image scale changed by {scale:.2f} in one frame")
        chain = _as3(step) @ self._chain
        height, width = gray.shape
        warp = {"dsize": (width, height), "flags": cv2.INTER_LINEAR,
                "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        mask = cv2.warpAffine(self._key_mask, chain[:2], **warp) >= 0.5
        if not mask.any():
            return self._lose("the mask left the picture")
        probs = cv2.warpAffine(self._key_probs, chain[:2], **warp)
        kept = new_pts[inliers.ravel() == 1]
        if len(kept) < max(2 * s.min_features, s.max_features // 3):
            # Top up with fresh corners on the carried mask (the old ones leave the view).
            fresh = self._corners(gray, mask)
            if fresh is not None:
                kept = np.concatenate([kept, fresh])[: 2 * s.max_features]
        self._gray, self._points, self._chain, self._mask = gray, kept.astype(np.float32), \
            chain, mask
        self.age += 1
        return TrackResult(mask, probs, self.age, chain[:2].copy(), agreeing)


@dataclass(frozen=True)
class Carried:
    """A mask carried onto frame ``index`` from the model's answer on frame ``key_index``."""

    index: int
    key_index: int
    mask: np.ndarray
    probs: np.ndarray
    tag: object  # what the answer was for (the node keeps its query here)

    @property
    def age(self) -> int:
        """Frames since the model's answer."""
        return self.index - self.key_index


class TrackedStream:
    """The frames since the model's last answer, and that answer carried along them.

    Frames come in order with increasing ``index`` (the camera's frame count). The model answers
    for an earlier frame, often while several newer ones have arrived: :meth:`answer` starts a
    track on the answered frame and catches up through the frames kept since, so the next
    :meth:`track` continues from the newest frame. Not thread-safe on its own (the node holds a
    lock around it).
    """

    def __init__(self, settings: TrackerSettings = TrackerSettings(), history: int = 30):
        """Keep the grey images of the last ``history`` frames (for catching up)."""
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.tracker = MaskTracker(settings)
        self.history = history
        self._frames: dict[int, np.ndarray] = {}
        self._index: int | None = None   # the frame the tracker stands on
        self._key_index = 0
        self._tag: object = None
        self.lost_reason = ""

    @property
    def active(self) -> bool:
        """Tell whether there is an answer to carry forward."""
        return self.tracker.active

    def reset(self) -> None:
        """Forget the answer (a new query, or tracking turned off); keep the frames."""
        self.tracker.reset()
        self._index = None
        self._tag = None

    def add(self, index: int, gray: np.ndarray) -> None:
        """Keep frame ``index`` (to catch up on it later) without tracking onto it."""
        self._frames[int(index)] = to_gray(gray)
        for old in [i for i in self._frames if i <= index - self.history]:
            del self._frames[old]

    def answer(self, index: int, gray: np.ndarray, mask: np.ndarray,
               probs: np.ndarray | None, tag: object = None) -> bool:
        """Take the model's ``mask`` on frame ``index`` and catch up to the newest frame kept.

        Returns False (no track) when the mask is empty or offers too few corners, or when the
        catching up loses it (``lost_reason`` says why).
        """
        self.reset()
        self.add(index, gray)
        self.lost_reason = ""
        if not np.any(mask):
            self.lost_reason = "the model found nothing to track"
            return False
        if not self.tracker.start(self._frames[index], mask, probs):
            self.lost_reason = "too few corners on and around the mask to track it"
            return False
        self._index, self._key_index, self._tag = int(index), int(index), tag
        for later in sorted(i for i in self._frames if i > index):
            result = self.tracker.step(self._frames[later])
            if result.mask is None:
                self.lost_reason = result.reason
                self.reset()
                return False
            self._index = later
        return True

    def track(self, index: int, gray: np.ndarray) -> Carried | None:
        """Carry the answer onto the new frame ``index``; None (``lost_reason`` set) if lost."""
        self.add(index, gray)
        if not self.tracker.active or self._index is None or index <= self._index:
            return None
        result = self.tracker.step(self._frames[index])
        if result.mask is None:
            self.lost_reason = result.reason
            self.reset()
            return None
        self._index = int(index)
        return Carried(int(index), self._key_index, result.mask, result.probs, self._tag)
