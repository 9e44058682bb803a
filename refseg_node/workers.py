"""The node's threads: worker (the model) and tracker (masks carried by optical flow).

:class:`Workers` owns what they share: the :class:`~refseg_node.scheduler.FrameScheduler` under
one condition variable, the depth and CameraInfo cache (``sensors``), the loaded ``Segmenter``
(touched on the model thread only: ``model_thread``) and the
:class:`~refseg_node.perception.tracking.TrackedStream`. The node's callbacks hand it frames and
queries (and wake the threads); a query is prepared once when it is set (its words looked up in
the model's vocabulary). The worker segments the latest frame for the active query, the tracker
answers the frames that arrive while the model is busy with the model's last mask moved onto
them; both decode a frame with the one ``decode_frame`` (raw or compressed). Results go to
the ``publish(result, rgb)`` callable, warnings to ``warn(kind, text)`` (the node throttles
them); the settings are read afresh through ``settings()`` for every frame, so live parameter
changes apply at once. No ROS entities here: the node creates those.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from refseg_node.language.queries import PreparedQuery, prepare_query
from refseg_node.model_thread import ModelThread
from refseg_node.perception.pipeline import NotActiveError, carried_frame, segment_frame
from refseg_node.perception.tracking import TrackedStream, TrackerSettings, to_gray
from refseg_node.ros_io.image_conversion import ConversionError, decode_frame
from refseg_node.scheduler import Counts, FrameScheduler, Job
from refseg_node.sensors import SensorCache
from refseg_node.timings import frame_timings, header_seconds, tracked_frame_timings

# How long the executor's image callback waits for the model thread to take a frame it is free
# for (it takes it within 0.1 ms; a model thread busy with a service call lets it go at this).
HANDOVER_TIMEOUT_S = 0.002


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
        self._unknown_words = None                # its vocabulary look-up (thread-safe)
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
        self._unknown_words = segmenter.unknown_words if segmenter is not None else None

    def model_loaded(self) -> bool:
        """Return whether a model is loaded and the worker's loop runs."""
        loop = self._loop
        return self._segmenter is not None and loop is not None and not loop.done()

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

    def prepare(self, command: str, expression: str) -> PreparedQuery:
        """Return the query ``command`` -> ``expression`` prepared for the loaded model."""
        unknown_words = self._unknown_words
        return prepare_query(command, expression,
                             unknown_words if unknown_words is not None else lambda _: ())

    def set_query(self, command: str, expression: str) -> bool:
        """Make ``command`` the active query; return whether it repeats the active one."""
        prepared = self.prepare(command, expression)
        with self.cv:
            repeated = self.scheduler.set_query(command, expression, prepared)
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
        return self.model.call(self._segment_here, image, self.prepare(command, expression))

    def _segment_here(self, image, query: PreparedQuery, received: float | None = None):
        """Decode ``image`` and segment ``query`` in it (on the model thread).

        ``received``: when a camera frame arrived (``time.time()``): its answer waits for its
        depth frame until ``depth_wait`` after that (None, the service's image: no wait).
        """
        s = self._settings()
        rgb = decode_frame(image, s.max_image_pixels)
        if self._segmenter is None:
            raise NotActiveError("the model is not loaded: the node is not active")
        return segment_frame(self._segmenter, image.header, rgb, query, s,
                             self._sensors_for(received, s), self._warn), rgb

    def _sensors_for(self, received: float | None, settings):
        """Return the sensor cache as the answer to a frame received at ``received`` sees it.

        Its depth is waited for until ``depth_wait`` s after the colour frame arrived: the
        tracker answers within milliseconds, the model later, and either may be ready before
        the depth frame is (colour and depth reach the node in no fixed order).
        """
        if received is None:
            return self.sensors
        return self.sensors.waiting_until(
            time.monotonic() + received + settings.depth_wait - time.time())

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
            result, rgb = self.model.call(self._segment_here, job.frame, job.query.prepared,
                                          job.received)
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
            if not self._stream.answer(job.number, to_gray(rgb), result.mask, result.probs,
                                       job.query) \
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
            rgb = decode_frame(job.frame, s.max_image_pixels)
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
        query = carried.tag
        if query.command != job.query.command:
            with self._track_lock:
                self._stream.reset()            # the answer was for an older query
            return False
        result = carried_frame(job.frame.header, rgb, carried, query.prepared, s,
                               self._sensors_for(job.received, s), self._warn)
        computed = time.time()
        self._publish(result, rgb)
        self._debug(tracked_frame_timings(
            carried.age, job.received, (start, converted, tracked, computed, time.time()),
            time.thread_time() - cpu))
        return True
