"""The node's health as ``/diagnostics`` reports it: rates, latency, shares, and a level.

Pure bookkeeping, no rclpy: the node tells :class:`HealthMonitor` what happens (a frame
arrived, an answer went out) and asks it once a second for a :class:`HealthReport`;
``refseg_node.ros_io.diagnostics`` turns that into a ``diagnostic_msgs/DiagnosticArray``.
Rates and shares are over the last :data:`WINDOW_S` seconds, model latencies over the last
:data:`LATENCY_SAMPLES` model answers.

Levels (as ``diagnostic_msgs/DiagnosticStatus``): ERROR when the node is active but its model
is not loaded (or its worker stopped); WARN when no frame arrived within ``frame_timeout``
seconds while active, or when fewer than :data:`MIN_3D_SHARE` of the found answers carry their
3D point while a depth stream is there; OK otherwise (inactive included: not working is then
what was asked for).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

OK, WARN, ERROR = 0, 1, 2
WINDOW_S = 10.0         # seconds of frames and answers the rates and shares are taken over
LATENCY_SAMPLES = 100   # model answers the latency percentiles are taken over
MIN_3D_SHARE = 0.9      # WARN below this share of found answers with their 3D point ...
MIN_3D_ANSWERS = 10     # ... once this many found answers had a depth stream to pair with


@dataclass(frozen=True)
class HealthReport:
    """One look at the node: a level (OK, WARN, ERROR), why, and the figures."""

    level: int
    message: str
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Answer:
    time: float
    tracked: bool
    found: bool
    has_3d: bool
    depth_stream: bool


class HealthMonitor:
    """What the node did lately, for :meth:`report` (times are ``time.monotonic()`` seconds).

    Thread-safe: the executor counts frames, the worker and the tracker count answers.
    """

    def __init__(self) -> None:
        """Start with nothing seen."""
        self._lock = threading.Lock()
        self._frames: deque[float] = deque()
        self._answers: deque[_Answer] = deque()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._last_frame: float | None = None
        self._since: float | None = None        # when the node became active (None: it is not)

    def activated(self, now: float) -> None:
        """Start counting afresh: the node became active at ``now``."""
        with self._lock:
            self._frames.clear()
            self._answers.clear()
            self._latencies.clear()
            self._last_frame = None
            self._since = now

    def deactivated(self) -> None:
        """Note that the node is no longer active."""
        with self._lock:
            self._since = None

    def frame(self, now: float) -> None:
        """Count a camera frame that arrived at ``now``."""
        with self._lock:
            self._frames.append(now)
            self._last_frame = now

    def answer(self, now: float, tracked: bool, found: bool, has_3d: bool,
               depth_stream: bool, model_latency: float | None) -> None:
        """Count an answer sent at ``now``.

        ``model_latency``: the model's seconds for it (None: a tracked answer).
        """
        with self._lock:
            self._answers.append(_Answer(now, tracked, found, has_3d, depth_stream))
            if model_latency is not None:
                self._latencies.append(model_latency)

    def _prune(self, now: float) -> float:
        """Drop what is older than the window; return the window's length so far."""
        start = now - WINDOW_S
        while self._frames and self._frames[0] < start:
            self._frames.popleft()
        while self._answers and self._answers[0].time < start:
            self._answers.popleft()
        if self._since is None:
            return WINDOW_S
        return max(min(WINDOW_S, now - self._since), 1e-3)

    def report(self, now: float, *, active: bool, model_loaded: bool, frame_timeout: float,
               dropped: int, numeric_path: str, device: str) -> HealthReport:
        """Return the node's health at ``now``; ``dropped``: frames dropped since activate."""
        with self._lock:
            window = self._prune(now)
            answers, frames = list(self._answers), len(self._frames)
            latencies = np.asarray(self._latencies, dtype=float) * 1e3
            last_frame, since = self._last_frame, self._since
        found = [a for a in answers if a.found and a.depth_stream]
        tracked = sum(a.tracked for a in answers)
        share_3d = sum(a.has_3d for a in found) / len(found) if found else None
        values = (
            ("state", "active" if active else "inactive"),
            ("input frame rate (Hz)", f"{frames / window:.2f}"),
            ("answered rate (Hz)", f"{len(answers) / window:.2f}"),
            ("model latency p50 (ms)",
             f"{np.percentile(latencies, 50):.1f}" if latencies.size else "n/a"),
            ("model latency p95 (ms)",
             f"{np.percentile(latencies, 95):.1f}" if latencies.size else "n/a"),
            ("dropped frames", str(dropped)),
            ("tracked share", f"{tracked / len(answers):.3f}" if answers else "n/a"),
            ("3D pairing share", f"{share_3d:.3f}" if share_3d is not None else "n/a"),
            ("numeric path", numeric_path or "n/a"),
            ("device", device or "n/a"),
            ("window (s)", f"{window:.1f}"),
        )
        if not active:
            return HealthReport(OK, "inactive: no model loaded, camera not subscribed", values)
        if not model_loaded:
            return HealthReport(ERROR, "active but the model is not loaded", values)
        problems = []
        quiet_since = last_frame if last_frame is not None else since
        if frame_timeout > 0 and quiet_since is not None and now - quiet_since > frame_timeout:
            problems.append(f"no camera frame for {now - quiet_since:.0f} s "
                            f"(frame_timeout {frame_timeout:g} s)")
        if share_3d is not None and len(found) >= MIN_3D_ANSWERS and share_3d < MIN_3D_SHARE:
            problems.append(f"3D point on {share_3d:.0%} of the found answers of the last "
                            f"{window:.0f} s (below {MIN_3D_SHARE:.0%}; no_3d_reason says why)")
        if problems:
            return HealthReport(WARN, "; ".join(problems), values)
        if answers:
            return HealthReport(OK, "segmenting", values)
        if frames:
            return HealthReport(OK, "frames arrive; no active query", values)
        return HealthReport(OK, "waiting for the first frame", values)
