"""Which frame the worker segments next, for which query: the latest frame wins.

Pure (no ROS, no threads, no clock of its own: the caller passes ``now``), so every rule is
tested without a graph. The node calls it under one lock from the executor thread (frames and
queries arrive) and the worker thread (takes jobs):

- a query is served by frames that arrive after it (``after_frame``);
- a frame not yet segmented when a newer one arrives is dropped (counted) while a query is
  active: a slow model never builds a backlog;
- ``mode`` ``once`` segments only the first frame after each query; ``max_rate_hz`` spaces
  segmentations at least ``1 / max_rate_hz`` seconds apart (0 = as frames come);
- with tracking, a frame that arrives while the model is busy (from taking a job until its
  answer is published: :meth:`FrameScheduler.finish_job`) or held back by ``max_rate_hz``
  goes to the tracker instead (:meth:`FrameScheduler.take_for_tracker`): every frame gets one
  answer, the model's or the tracker's, and the model's next job is a frame no one has answered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Query:
    """The active query and the frame count when it arrived (it is served by later frames)."""

    command: str
    expression: str
    after_frame: int
    served: bool = False
    prepared: Any = None     # what the worker computed once for it (a PreparedQuery)


@dataclass(frozen=True)
class Job:
    """One frame to segment for one query."""

    frame: Any
    query: Query
    received: float          # wall-clock time (s) the frame arrived
    number: int              # the frame's count since the last reset


@dataclass(frozen=True)
class Counts:
    """Frames segmented and dropped in one period (see :meth:`FrameScheduler.take_counts`)."""

    processed: int
    dropped: int


class FrameScheduler:
    """The latest frame, the active query and the rules that pair them."""

    def __init__(self) -> None:
        """Start with no frame and no query."""
        self.reset()

    def reset(self) -> None:
        """Forget the frame, the query and the counts (configure, cleanup)."""
        self.query: Query | None = None
        self.frame: Any = None
        self.frame_received = 0.0
        self.frame_count = 0
        self._taken_frame = 0
        self._next_allowed = float("-inf")
        self.busy = False           # a job is taken and not done
        self.processed = self.dropped = 0
        self._reported = Counts(0, 0)

    # -- inputs ------------------------------------------------------------------------------
    def set_query(self, command: str, expression: str, prepared: Any = None) -> bool:
        """Make ``command`` (segmenting ``expression``) the active query; True if it repeats.

        ``prepared``: the caller's per-query data (kept with the query, handed out with jobs).
        """
        repeated = self.query is not None and self.query.command == command
        self.query = Query(command, expression, after_frame=self.frame_count,
                           prepared=prepared)
        return repeated

    def clear_query(self) -> bool:
        """Drop the active query; return whether there was one."""
        cleared = self.query is not None
        self.query = None
        return cleared

    def add_frame(self, frame: Any, received: float) -> None:
        """Keep ``frame`` as the latest; the one it replaces is dropped if it was still due."""
        if self.frame is not None and self._taken_frame < self.frame_count \
                and self.query is not None:
            self.dropped += 1
        self.frame = frame
        self.frame_received = received
        self.frame_count += 1

    # -- the worker ----------------------------------------------------------------------------
    def next_job(self, now: float, mode: str = "continuous",
                 max_rate_hz: float = 0.0) -> Job | float | None:
        """Return the job to run, the seconds to wait (rate limit), or None (nothing to do).

        ``now`` is a monotonic time in seconds. Taking a job marks its frame as taken.
        """
        q = self.query
        if not self._due(mode):
            return None
        wait = self._next_allowed - now
        if wait > 0:
            return wait
        self._taken_frame = self.frame_count
        if mode == "once":
            self.query = replace(q, served=True)
        self._next_allowed = now + (1.0 / max_rate_hz if max_rate_hz > 0 else 0.0)
        self.busy = True
        return Job(self.frame, q, self.frame_received, self.frame_count)

    def _due(self, mode: str) -> bool:
        """Return whether the latest frame is one the active query still wants segmented."""
        q = self.query
        if q is None or self.frame is None or self.frame_count <= self._taken_frame:
            return False
        return not (self.frame_count <= q.after_frame or (mode == "once" and q.served))

    def takes_now(self, now: float, mode: str = "continuous") -> bool:
        """Return whether :meth:`next_job` at ``now`` would hand out the latest frame."""
        return not self.busy and now >= self._next_allowed and self._due(mode)

    def job_done(self) -> None:
        """Count one frame segmented (the model stays busy until :meth:`finish_job`)."""
        self.processed += 1

    def finish_job(self) -> None:
        """Mark the taken job finished (its answer published), whether it was segmented or not.

        Until then frames go to the tracker: while the worker publishes the model's answer it
        cannot take them either, and a slow publish (the first one of a process, or a loaded
        machine) would otherwise leave every frame that arrives meanwhile unanswered.
        """
        self.busy = False

    def take_for_tracker(self, now: float, mode: str = "continuous") -> Job | None:
        """Return the latest frame for the tracker when the model will not take it now.

        That is: a query is active in ``continuous`` mode, the frame came after it and nobody
        took it, and the model is busy or waits for ``max_rate_hz``. The frame is then taken:
        the model's next job is a newer frame.
        """
        if mode != "continuous" or not self._due(mode) or not self.model_waits(now):
            return None
        self._taken_frame = self.frame_count
        return Job(self.frame, self.query, self.frame_received, self.frame_count)

    def model_waits(self, now: float) -> bool:
        """Return whether a frame arriving at ``now`` (monotonic s) would wait for the model.

        The model is busy with a job, or ``max_rate_hz`` holds it back.
        """
        return self.busy or now < self._next_allowed

    def give_back(self, job: Job) -> None:
        """Leave ``job``'s frame to the model after all (the tracker could not answer it).

        Only while it is still the latest frame; an older one is dropped as usual.
        """
        if self.frame_count == job.number and self._taken_frame == job.number:
            self._taken_frame = job.number - 1

    def take_counts(self) -> Counts:
        """Return the frames segmented and dropped since the previous call."""
        now = Counts(self.processed, self.dropped)
        since = Counts(now.processed - self._reported.processed,
                       now.dropped - self._reported.dropped)
        self._reported = now
        return since
