"""The node's threads: worker (the model), tracker (masks carried by optical flow), model thread.

:class:`Workers` owns what they share: the :class:`~refseg_node.scheduler.FrameScheduler` under
one condition variable, the depth and CameraInfo cache, the loaded ``Segmenter`` (touched on the
model thread only) and the :class:`~refseg_node.perception.tracking.TrackedStream`. The
node's callbacks hand it frames and queries (and wake the threads); the worker segments the
latest frame for the active query, the tracker answers the frames that arrive while the model
is busy with the model's last mask moved onto them. Results go to the ``publish(result, rgb)``
callable, warnings to ``warn(kind, text)`` (the node throttles them); the settings are read
afresh through ``settings()`` for every frame, so live parameter changes apply at once. No ROS
entities here: the node creates those.

Every call into torch (loading, inference, release) runs on :class:`ModelThread`. libgomp keeps
an OpenMP team for each thread that enters a parallel region, and once a process holds more
OpenMP threads than CPUs it stops spinning between parallel regions: every operator of a forward
pass then pays a futex wake-up. The node used to load the model in its executor thread and run it
in the worker: two teams, and the model ran 1.5-1.7x slower in the node than alone (measured on 2
cores, 2026-12-01: 27 ms against 17 ms per 640x480 frame; all in one thread, 17.8 ms). The
worker's loop runs on that thread too: a frame reaches the model in one wake-up (executor ->
model thread) instead of three (executor -> worker -> model thread -> worker).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from refseg_node.perception.pipeline import (
    NotActiveError,
    SensorCache,
    carried_frame,
    segment_frame,
)
from refseg_node.perception.tracking import TrackedStream, TrackerSettings, to_gray
from refseg_node.ros_io.image_conversion import ConversionError, to_rgb
from refseg_node.scheduler import Counts, FrameScheduler, Job

# How long the executor's image callback waits for the model thread to take a frame it is free
# for (it takes it within 0.1 ms; a model thread busy with a service call lets it go at this).
HANDOVER_TIMEOUT_S = 0.002


def frame_timings(stamp: float, received: float, start: float, inference: float,
                  segmented: float, published: float, handed: float) -> str:
    """Return the debug line of one segmented frame's timings (wall-clock seconds in).

    ``handed``: when the tracker had the answer (after the publish, off the answer's latency).
    """
    return (f"frame timings ms: stamp->received {1e3 * (received - stamp):.1f}, waited "
            f"{1e3 * (start - received):.1f}, model {1e3 * inference:.1f}, rest of "
            f"segmentation {1e3 * (segmented - start - inference):.1f}, publish "
            f"{1e3 * (published - segmented):.1f}, tracker hand-off "
            f"{1e3 * (handed - published):.1f}")


def tracked_frame_timings(age: int, received: float, times: tuple[float, ...],
                          cpu: float) -> str:
    """Return the debug line of one tracked frame's timings (wall-clock seconds in).

    ``times``: when the tracker started on the frame, had converted it, had tracked it, had its
    depth, had its result and had published it; ``cpu``: the tracker thread's CPU seconds for
    it (what the frame costs whatever the machine's load).
    """
    start, converted, tracked, depth, computed, published = times
    return (f"tracked frame timings ms (age {age}): waited {1e3 * (start - received):.1f}, "
            f"convert {1e3 * (converted - start):.1f}, track {1e3 * (tracked - converted):.1f}, "
            f"depth wait {1e3 * (depth - tracked):.1f}, rest of the frame "
            f"{1e3 * (computed - depth):.1f}, publish {1e3 * (published - computed):.1f}; "
            f"thread cpu {1e3 * cpu:.1f}")


def header_seconds(header) -> float:
    """Return a header's stamp in seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class ModelThread:
    """One thread that runs every call into torch for the node (see the module's docstring).

    While the node is active the worker's loop itself runs on this thread (:meth:`submit`ted
    once), so a frame goes from the executor's callback to the model in one wake-up, not three;
    calls made meanwhile (the service, the release) wait in a queue that the loop runs between
    frames (:meth:`run_pending`). ``cv`` is shared with the loop's own scheduler, so a queued
    call wakes it.
    """

    def __init__(self, cv: threading.Condition | None = None) -> None:
        """Start no thread yet: the first :meth:`submit` does."""
        self.cv = cv if cv is not None else threading.Condition()
        self._calls: deque[tuple[Future, Callable, tuple, dict]] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def on_thread(self) -> bool:
        """Return whether the caller is the model thread."""
        return threading.current_thread() is self._thread

    def call(self, fn: Callable, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on the model thread; return its result or raise its error."""
        if self.on_thread():
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)`` for the model thread; return its future."""
        future: Future = Future()
        with self.cv:
            if self._closed:
                raise RuntimeError("the model thread is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="refseg-model",
                                                daemon=True)
                self._thread.start()
            self._calls.append((future, fn, args, kwargs))
            self.cv.notify_all()
        return future

    def pending(self) -> bool:
        """Return whether calls wait in the queue."""
        with self.cv:
            return bool(self._calls)

    def run_pending(self) -> None:
        """Run the queued calls (on the model thread: from a long call such as the worker)."""
        while True:
            with self.cv:
                if not self._calls:
                    return
                item = self._calls.popleft()
            self._run(item)

    def close(self) -> None:
        """Let the thread finish its calls and end (no call after this)."""
        with self.cv:
            self._closed = True
            self.cv.notify_all()
        if self._thread is not None and not self.on_thread():
            self._thread.join()

    @staticmethod
    def _run(item) -> None:
        future, fn, args, kwargs = item
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - the caller gets it through the future
            future.set_exception(err)
        else:
            future.set_result(result)

    def _main(self) -> None:
        while True:
            with self.cv:
                while not self._calls and not self._closed:
                    self.cv.wait()
                if not self._calls:
                    return
            self.run_pending()


class Workers:
    """The worker and tracker threads of the node, and the state they share."""

    def __init__(self, settings: Callable[[], object], warn: Callable[[str, str], None],
                 publish: Callable[[object, object], None],
                 debug: Callable[[str], None]) -> None:
        """Keep the callbacks; no thread runs before :meth:`start`."""
        self._settings, self._warn, self._publish, self._debug = settings, warn, publish, debug
        lock = threading.RLock()                  # guards the scheduler and the model's queue
        self.cv = threading.Condition(lock)       # wakes the model thread (the worker's loop)
        # The tracker waits on its own condition of the same lock: a frame that the model takes
        # at once must not wake it too (two threads waking for one frame, on 2 cores, delayed
        # the model's start by a GIL hand-over).
        self._tracker_cv = threading.Condition(lock)
        self.scheduler = FrameScheduler()
        self.sensors = SensorCache()
        self._segmenter = None                    # used on the model thread only
        self.model = ModelThread(self.cv)         # every call into torch goes through it
        self._loop: Future | None = None          # the worker's loop, on the model thread
        self._threads: list[threading.Thread] = []
        self._track_lock = threading.Lock()      # guards the tracked stream
        self._stream = TrackedStream()
        self._stop = threading.Event()
        self._taken = threading.Event()           # the model thread has taken the new frame
        self.handover_timeout = HANDOVER_TIMEOUT_S

    # -- the node's side -----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget frames, query, depth and the carried mask (configure, cleanup)."""
        with self.cv:
            self.scheduler.reset()
        self.sensors.clear()
        with self._track_lock:
            self._stream = TrackedStream()

    def start(self, segmenter) -> None:
        """Use ``segmenter``; start the worker (on the model thread) and the tracker."""
        self.model.call(self._use, segmenter)
        self._stop.clear()
        self._loop = self.model.submit(self._run_worker)
        self._threads = [threading.Thread(target=self._run_tracker, name="refseg-tracker",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads (waiting for the frame in hand) and release the model."""
        self._stop.set()
        with self.cv:
            self.cv.notify_all()
            self._tracker_cv.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self._threads = []
        if self._loop is not None and not self.model.on_thread():
            error = self._loop.exception()      # waits for the loop to end
            if error is not None:
                self._warn("worker", f"the worker had stopped: {type(error).__name__}: {error}")
        self._loop = None
        self.model.call(self._use, None)

    def _use(self, segmenter) -> None:
        """Make ``segmenter`` the model (None: release the current one); on the model thread."""
        if self._segmenter is not None and self._segmenter is not segmenter:
            self._segmenter.release()
        self._segmenter = segmenter

    def totals(self) -> tuple[int, int, int]:
        """Return the frames received, segmented and dropped since the last reset."""
        with self.cv:
            s = self.scheduler
            return s.frame_count, s.processed, s.dropped

    def take_counts(self) -> Counts:
        """Return the frames segmented and dropped since the previous call."""
        with self.cv:
            return self.scheduler.take_counts()

    def add_frame(self, msg) -> None:
        """Make ``msg`` the latest frame and wake the threads."""
        received = time.time()
        with self.cv:
            self.scheduler.add_frame(msg, received)
            now = time.monotonic()
            handed = self.scheduler.takes_now(now, self._settings().mode)
            if handed:
                self._taken.clear()
            self.cv.notify_all()
            if self.scheduler.model_waits(now):
                self._tracker_cv.notify_all()
        if handed:
            # Hand the interpreter to the model thread until it has the frame: the executor's
            # own Python after this callback (about 0.3 ms) would otherwise hold the GIL while
            # the woken model thread waits for it (measured on 2 cores: 0.6-0.7 ms from this
            # callback to the model's start).
            self._taken.wait(self.handover_timeout)

    def set_query(self, command: str, expression: str) -> bool:
        """Make ``command`` the active query; return whether it repeats the active one."""
        with self.cv:
            repeated = self.scheduler.set_query(command, expression)
            self.cv.notify_all()
            self._tracker_cv.notify_all()
        return repeated

    def clear_query(self) -> bool:
        """Drop the active query; return whether there was one."""
        with self.cv:
            return self.scheduler.clear_query()

    def previous_expression(self) -> str | None:
        """Return the active query's expression (None without one)."""
        with self.cv:
            query = self.scheduler.query
        return query.expression if query else None

    def latest_frame(self):
        """Return the latest frame received (None before the first)."""
        with self.cv:
            return self.scheduler.frame

    def segment(self, image, command: str, expression: str):
        """Segment ``expression`` in ``image`` with the loaded model; return (FrameResult, rgb).

        Raises ``ConversionError`` for an unusable image and ``NotActiveError`` without a model.
        """
        return self.model.call(self._segment_here, image, command, expression)

    def _segment_here(self, image, command: str, expression: str):
        return segment_frame(self._segmenter, image, command, expression, self._settings(),
                             self.sensors, self._warn)

    # -- the worker ----------------------------------------------------------------------------
    def _run_worker(self) -> None:
        """Run the worker's loop (on the model thread): the queued model calls, then frames."""
        while not self._stop.is_set():
            self.model.run_pending()
            with self.cv:
                if self.model.pending():
                    continue
                s = self._settings()
                job = self.scheduler.next_job(time.monotonic(), s.mode, s.max_rate_hz)
                if not isinstance(job, Job):
                    self.cv.wait(timeout=job if job is not None else 0.5)
                    continue
            self._taken.set()
            try:
                self._process(job)
            except Exception as err:  # noqa: BLE001 - the worker must survive any frame
                self._warn("worker", f"frame skipped: {type(err).__name__}: {err}")
            finally:
                with self.cv:
                    self.scheduler.finish_job()
                    self.cv.notify_all()

    def _process(self, job: Job) -> None:
        start = time.time()
        try:
            result, rgb = self.segment(job.frame, job.query.command, job.query.expression)
        except ConversionError as err:
            self._warn("bad_image", f"image on {self._settings().image_topic} skipped: {err}")
            return
        except NotActiveError:
            return
        self._wait_min_inference_time(start)
        if self._stop.is_set():
            return
        with self.cv:
            self.scheduler.job_done()
        segmented = time.time()
        self._publish(result, rgb)
        published = time.time()
        # After the answer is out: starting the tracker (corners, catching up the frames that
        # arrived meanwhile) costs milliseconds that the answer's latency need not carry.
        self._hand_to_tracker(job, result, rgb)
        self._debug(frame_timings(header_seconds(job.frame.header), job.received, start,
                                  result.inference_time, segmented, published, time.time()))

    def _wait_min_inference_time(self, start: float) -> None:
        """Hold the answer until ``min_inference_time`` has passed (a testing aid; 0 = off)."""
        left = self._settings().min_inference_time - (time.time() - start)
        if left > 0:
            self._stop.wait(left)

    # -- the tracker ---------------------------------------------------------------------------
    def _hand_to_tracker(self, job: Job, result, rgb) -> None:
        """Make the model's answer the mask the tracker carries onto the next frames."""
        s = self._settings()
        with self._track_lock:
            if not s.tracking or s.mode != "continuous":
                self._stream.reset()
                return
            if self._stream.tracker.settings.max_age != s.tracking_max_age:
                self._stream = TrackedStream(TrackerSettings(max_age=s.tracking_max_age))
            tag = (job.query, result.unknown_words)
            if not self._stream.answer(job.number, to_gray(rgb), result.mask, result.probs,
                                       tag) \
                    and result.target.found:
                self._warn("track_start", f"no tracking from this answer: "
                                          f"{self._stream.lost_reason}")

    def _run_tracker(self) -> None:
        while not self._stop.is_set():
            with self.cv:
                s = self._settings()
                # Without a mask to carry, the frame is left to the model (it takes the latest).
                job = (self.scheduler.take_for_tracker(time.monotonic(), s.mode)
                       if s.tracking and self._stream.active else None)
                if job is None:
                    self._tracker_cv.wait(timeout=0.5)
                    continue
            answered = False
            try:
                answered = self._track(job)
            except Exception as err:  # noqa: BLE001 - the tracker must survive any frame
                self._warn("tracker", f"frame not tracked: {type(err).__name__}: {err}")
            if not answered:
                with self.cv:
                    self.scheduler.give_back(job)
                    self.cv.notify_all()

    def _track(self, job: Job) -> bool:
        """Answer ``job``'s frame with the carried mask; False when the track is lost."""
        s = self._settings()
        start, cpu = time.time(), time.thread_time()
        try:
            rgb = to_rgb(job.frame, s.max_image_pixels)
        except ConversionError as err:
            self._warn("bad_image", f"image on {s.image_topic} skipped: {err}")
            return True                         # the model could not use it either
        converted = time.time()
        with self._track_lock:
            carried = self._stream.track(job.number, to_gray(rgb))
            reason = self._stream.lost_reason
        tracked = time.time()
        if carried is None:
            if not reason:
                return True                     # nothing newer to carry onto (never loops)
            self._warn("track_lost", f"tracking lost ({reason}); waiting for the model")
            return False                        # the stream is reset: the model takes it
        query, unknown = carried.tag
        if query.command != job.query.command:
            with self._track_lock:
                self._stream.reset()            # the answer was for an older query
            return False
        self._await_depth(job.frame.header)
        depth = time.time()
        result, _ = carried_frame(job.frame, carried, query.command, query.expression, s,
                                  self.sensors, self._warn, unknown, rgb=rgb)
        computed = time.time()
        self._publish(result, rgb)
        self._debug(tracked_frame_timings(
            carried.age, job.received, (start, converted, tracked, depth, computed, time.time()),
            time.thread_time() - cpu))
        return True

    def _await_depth(self, header, timeout: float = 0.1) -> None:
        """Give the depth frame of ``header``'s stamp up to ``timeout`` s to arrive.

        A camera publishes depth and colour together, but the two topics reach the node in no
        fixed order; the tracker answers within milliseconds of the colour frame, so it waits a
        little for its depth (the model's answer comes much later and finds it there).
        """
        end = time.monotonic() + timeout
        while not self._stop.is_set():
            have_depth, depth, _ = self.sensors.pair(header, self._settings().depth_sync_tolerance)
            if not have_depth or depth is not None or time.monotonic() >= end:
                return
            self._stop.wait(0.005)
