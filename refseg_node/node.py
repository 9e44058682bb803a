"""The ``refseg`` lifecycle node: segment what a spoken command refers to in a camera stream.

Topics, service and parameters are those of the public contract (docs/INTERFACES.md). This file
only wires the parts together:

- ``parameters``: one spec per parameter (descriptors, checks, the ``Settings``);
- ``queries``: command -> expression, log limits; ``scheduler``: which frame, which query;
- ``camera_input``: the camera subscriptions (on activate), their QoS, the frame watchdog;
- ``pipeline``: one frame through the model and the depth pairing -> ``FrameResult``;
- ``outputs``: the publishers, where a ``FrameResult`` becomes published messages.

Callbacks (one executor thread) only store the latest data; a worker thread segments the latest
frame for the active query, so a slow model never builds a backlog (older frames are dropped,
reported per ``log_period``). With ``tracking`` on, a tracker thread answers the frames that
arrive while the model is busy: it carries the model's last mask onto each of them
(``tracking``: optical flow); the model's next answer replaces the carried mask. The model is
loaded and the camera subscribed on ``activate``, both released on ``deactivate``; with
``autostart`` (the default) the node configures and activates itself, so ``refseg_node`` alone
comes up working.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import Image
from std_msgs.msg import String

from refseg_msgs.srv import Segment
from refseg_node import messages
from refseg_node.camera_input import CameraInputs
from refseg_node.dds_profile import apply_default_profile
from refseg_node.image_conversion import ConversionError, to_rgb
from refseg_node.outputs import Outputs
from refseg_node.parameters import PARAMETERS, SPECS, Settings, SettingsError, check_value
from refseg_node.pipeline import NotActiveError, SensorCache, carried_frame, segment_frame
from refseg_node.queries import Throttle, TokenBucket, resolve_query
from refseg_node.scheduler import FrameScheduler, Job
from refseg_node.tracking import TrackedStream, TrackerSettings, to_gray

NODE_NAME = "refseg"
TICK_PERIOD = 1.0  # seconds between two looks at the camera inputs and the drop counts


class RefSegNode(LifecycleNode):
    """Language-conditioned segmentation (Hu, Rohrbach, Darrell, ECCV 2016) as a managed node."""

    def __init__(self, **kwargs):
        """Declare the parameters; entities are created on configure."""
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._settings: Settings | None = None
        self._cv = threading.Condition()          # guards the scheduler
        self._scheduler = FrameScheduler()
        self._sensors = SensorCache()
        self._model_lock = threading.Lock()
        self._segmenter = None
        self._worker: threading.Thread | None = None
        self._tracker: threading.Thread | None = None
        self._track_lock = threading.Lock()      # guards the tracked stream
        self._stream = TrackedStream()
        self._stop = threading.Event()
        self._active = False
        self._throttle = Throttle()
        self._query_log = TokenBucket(burst=20, rate=10.0, now=time.monotonic())
        self._outputs: Outputs | None = None
        self._inputs: list = []
        self._camera: CameraInputs | None = None
        self._timer = None
        self._service = None
        self._last_report = time.monotonic()
        self._at_activate = (0, 0, 0)

    # -- parameters and logging -----------------------------------------------------------------
    def _values(self) -> dict[str, object]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}

    def _on_set_parameters(self, params) -> SetParametersResult:
        ours = [p for p in params if p.name in SPECS]
        for param in ours:
            try:
                check_value(param.name, param.value)
            except SettingsError as err:
                return SetParametersResult(successful=False, reason=str(err))
        if self._settings is not None:
            live = {p.name: p.value for p in ours if SPECS[p.name].live}
            if live:
                self._settings = replace(self._settings, **live)
            later = [p.name for p in ours if not SPECS[p.name].live]
            if later:
                self.get_logger().info(
                    f"parameter(s) {', '.join(later)} take effect at the next configure")
        return SetParametersResult(successful=True)

    def _warn(self, kind: str, text: str) -> None:
        """Log a warning, at most once per ``log_period`` seconds for each ``kind``."""
        period = self._settings.log_period if self._settings else 5.0
        if self._throttle.allow(kind, time.monotonic(), period):
            # One call site, one severity: rclpy refuses a severity change at a call site.
            self.get_logger().warning(text)

    def checkpoint_path(self) -> Path:
        """Return the checkpoint the node loads: the parameter, or the shipped default."""
        if self._settings and self._settings.checkpoint:
            return Path(self._settings.checkpoint).expanduser()
        import refseg_model

        return refseg_model.default_checkpoint_path()

    # -- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate the parameters and create publishers, subscriptions and the service."""
        try:
            self._settings = Settings.from_values(self._values())
        except SettingsError as err:
            self.get_logger().error(f"cannot configure: {err}")
            return TransitionCallbackReturn.FAILURE
        path = self.checkpoint_path()
        if not path.is_file():
            self.get_logger().error(
                f"cannot configure: checkpoint not found: {path} (set the 'checkpoint' parameter "
                "to a file written by refseg-train)")
            return TransitionCallbackReturn.FAILURE
        self._reset_stream_state()
        s = self._settings
        self._outputs = Outputs(self, self._warn)
        self._inputs = [self.create_subscription(String, "/refseg/query", self._on_query, 10)]
        self._service = self.create_service(Segment, "/refseg/segment", self._on_segment)
        self.get_logger().info(
            f"configured: checkpoint {path}, image {s.image_topic} ({s.image_transport}, "
            f"image_qos {s.image_qos}), depth {s.depth_topic}, camera_info "
            f"{s.camera_info_topic}, mode {s.mode}")
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Load the model and start the worker."""
        from refseg_model import Segmenter
        from refseg_model.fastpath import configure_serving, describe_threads

        serving = describe_threads(configure_serving())  # threads + allocator, before the model
        path, s = self.checkpoint_path(), self._settings
        try:
            segmenter = Segmenter.from_checkpoint(path, device=s.device, precision=s.precision,
                                                  channels_last=s.channels_last)
        except Exception as err:  # noqa: BLE001 - any load failure keeps the node inactive
            self.get_logger().error(f"cannot activate: loading {path} failed: {err}")
            return TransitionCallbackReturn.FAILURE
        with self._model_lock:
            self._segmenter = segmenter
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_worker, name="refseg-worker",
                                        daemon=True)
        self._tracker = threading.Thread(target=self._run_tracker, name="refseg-tracker",
                                         daemon=True)
        self._active = True
        self._worker.start()
        self._tracker.start()
        with self._cv:
            sch = self._scheduler
            self._at_activate = (sch.frame_count, sch.processed, sch.dropped)
        self._camera = CameraInputs(self, s, self._on_image, self._sensors.add_depth,
                                    self._sensors.set_camera_info, self.get_logger().info,
                                    self.get_logger().warning)
        self._timer = self.create_timer(TICK_PERIOD, self._on_tick)
        self.get_logger().info(f"active: {segmenter!r}; numeric path "
                               f"{segmenter.numeric_path.reason}; {serving}; threshold "
                               f"{segmenter.threshold:g}; inputs {self._camera.describe()}")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe from the camera, stop the worker and release the model (GPU freed)."""
        self._close_camera()
        self._stop_worker_and_release()
        with self._cv:
            sch = self._scheduler
            received, processed, dropped = (now - then for now, then in zip(
                (sch.frame_count, sch.processed, sch.dropped), self._at_activate))
        self.get_logger().info(f"inactive: model released; {received} frames received, "
                               f"{processed} segmented, {dropped} dropped since activate")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Destroy publishers, subscriptions and the service; forget queries and frames."""
        self._destroy_entities()
        self._reset_stream_state()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release everything."""
        self._close_camera()
        self._stop_worker_and_release()
        self._destroy_entities()
        return super().on_shutdown(state)

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release everything and go back to unconfigured."""
        self._close_camera()
        self._stop_worker_and_release()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def _reset_stream_state(self) -> None:
        with self._cv:
            self._scheduler.reset()
        self._sensors.clear()
        with self._track_lock:
            self._stream = TrackedStream()

    def _close_camera(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._camera is not None:
            self._camera.close()
            self._camera = None

    def _on_tick(self) -> None:
        """Follow the camera publishers; report frames dropped in the last period."""
        if self._camera is not None:
            self._camera.tick()
        now = time.monotonic()
        if now - self._last_report >= max(self._settings.log_period, TICK_PERIOD):
            with self._cv:
                counts = self._scheduler.take_counts()
            if counts.dropped:
                self.get_logger().warning(
                    f"{counts.processed} frames segmented, {counts.dropped} dropped in the last "
                    f"{now - self._last_report:.0f} s (the model is slower than the camera; "
                    "latest wins)")
            self._last_report = now

    def _stop_worker_and_release(self) -> None:
        self._active = False
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        for thread in (self._worker, self._tracker):
            if thread is not None and thread is not threading.current_thread():
                thread.join()
        self._worker = self._tracker = None
        with self._model_lock:
            if self._segmenter is not None:
                self._segmenter.release()
                self._segmenter = None

    def _destroy_entities(self) -> None:
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None

    def close(self) -> None:
        """Stop the worker and release the model (before ``destroy_node``)."""
        self._stop_worker_and_release()

    # -- callbacks: store only -----------------------------------------------------------------
    def _on_query(self, msg: String) -> None:
        if not self._active:
            self._warn("inactive_query", "inactive: query ignored (activate the node first)")
            return
        text = msg.data
        if not text.strip():
            with self._cv:
                cleared = self._scheduler.clear_query()
            if cleared and self._query_log.allow(time.monotonic()):
                self.get_logger().info("query cleared")
            return
        expression = self._expression_of(text)
        if expression is None:
            return
        with self._cv:
            repeated = self._scheduler.set_query(text, expression)
            self._cv.notify_all()
        if not repeated and self._query_log.allow(time.monotonic()):
            self.get_logger().info(f"query {text[:300]!r} -> expression {expression!r}")

    def _expression_of(self, text: str) -> str | None:
        """Return the expression of a command, or None (warned) when it has none."""
        with self._cv:
            previous = self._scheduler.query
        resolved = resolve_query(text, self._settings.max_query_length,
                                 previous.expression if previous else None)
        for kind, warning in resolved.warnings:
            self._warn(kind, warning)
        return resolved.expression

    def _on_image(self, msg: Image) -> None:
        if not self._active:
            return
        received = time.time()
        with self._cv:
            self._scheduler.add_frame(msg, received)
            self._cv.notify_all()

    # -- worker --------------------------------------------------------------------------------
    def _run_worker(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                s = self._settings
                job = self._scheduler.next_job(time.monotonic(), s.mode, s.max_rate_hz)
                if not isinstance(job, Job):
                    self._cv.wait(timeout=job if job is not None else 0.5)
                    continue
            try:
                self._process(job)
            except Exception as err:  # noqa: BLE001 - the worker must survive any frame
                self._warn("worker", f"frame skipped: {type(err).__name__}: {err}")
            finally:
                with self._cv:
                    self._scheduler.finish_job()
                    self._cv.notify_all()

    def _segment(self, image: Image, command: str, expression: str):
        """Segment ``expression`` in ``image``; return (FrameResult, rgb)."""
        with self._model_lock:
            return segment_frame(self._segmenter, image, command, expression, self._settings,
                                 self._sensors, self._warn)

    def _process(self, job: Job) -> None:
        start = time.time()
        try:
            result, rgb = self._segment(job.frame, job.query.command, job.query.expression)
        except ConversionError as err:
            self._warn("bad_image", f"image on {self._settings.image_topic} skipped: {err}")
            return
        except NotActiveError:
            return
        self._wait_min_inference_time(start)
        if self._stop.is_set():
            return
        self._hand_to_tracker(job, result, rgb)
        with self._cv:
            self._scheduler.job_done()
        segmented = time.time()
        if self._outputs is not None:
            self._outputs.publish(result, rgb, self._settings)
        stamp = job.frame.header.stamp.sec + job.frame.header.stamp.nanosec * 1e-9
        self.get_logger().debug(
            f"frame timings ms: stamp->received {1e3 * (job.received - stamp):.1f}, waited "
            f"{1e3 * (start - job.received):.1f}, model {1e3 * result.inference_time:.1f}, rest "
            f"of segmentation {1e3 * (segmented - start - result.inference_time):.1f}, publish "
            f"{1e3 * (time.time() - segmented):.1f}")

    def _wait_min_inference_time(self, start: float) -> None:
        """Hold the answer until ``min_inference_time`` has passed (a testing aid; 0 = off)."""
        left = self._settings.min_inference_time - (time.time() - start)
        if left > 0:
            self._stop.wait(left)

    # -- tracker -------------------------------------------------------------------------------
    def _hand_to_tracker(self, job: Job, result, rgb) -> None:
        """Make the model's answer the mask the tracker carries onto the next frames."""
        s = self._settings
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
            with self._cv:
                s = self._settings
                # Without a mask to carry, the frame is left to the model (it takes the latest).
                job = (self._scheduler.take_for_tracker(time.monotonic(), s.mode)
                       if s.tracking and self._stream.active else None)
                if job is None:
                    self._cv.wait(timeout=0.5)
                    continue
            answered = False
            try:
                answered = self._track(job)
            except Exception as err:  # noqa: BLE001 - the tracker must survive any frame
                self._warn("tracker", f"frame not tracked: {type(err).__name__}: {err}")
            if not answered:
                with self._cv:
                    self._scheduler.give_back(job)
                    self._cv.notify_all()

    def _track(self, job: Job) -> bool:
        """Answer ``job``'s frame with the carried mask; False when the track is lost."""
        s = self._settings
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
                                  self._sensors, self._warn, unknown, rgb=rgb)
        computed = time.time()
        if self._outputs is not None:
            self._outputs.publish(result, rgb, s)
        self.get_logger().debug(
            f"tracked frame timings ms (age {carried.age}): waited "
            f"{1e3 * (start - job.received):.1f}, convert {1e3 * (converted - start):.1f}, "
            f"track {1e3 * (tracked - converted):.1f}, depth wait {1e3 * (depth - tracked):.1f}, "
            f"rest of the frame {1e3 * (computed - depth):.1f}, publish "
            f"{1e3 * (time.time() - computed):.1f}; thread cpu "
            f"{1e3 * (time.thread_time() - cpu):.1f}")
        return True

    def _await_depth(self, header, timeout: float = 0.1) -> None:
        """Give the depth frame of ``header``'s stamp up to ``timeout`` s to arrive.

        A camera publishes depth and colour together, but the two topics reach the node in no
        fixed order; the tracker answers within milliseconds of the colour frame, so it waits a
        little for its depth (the model's answer comes much later and finds it there).
        """
        end = time.monotonic() + timeout
        while not self._stop.is_set():
            have_depth, depth, _ = self._sensors.pair(header, self._settings.depth_sync_tolerance)
            if not have_depth or depth is not None or time.monotonic() >= end:
                return
            self._stop.wait(0.005)

    # -- service -------------------------------------------------------------------------------
    def _on_segment(self, request: Segment.Request, response: Segment.Response):
        response.success = False
        if not self._active:
            response.message = "the node is not active: activate it through its lifecycle"
            return response
        expression = self._expression_of(request.command) if request.command.strip() else None
        if not expression:
            response.message = f"the command {request.command!r} names no object to segment"
            return response
        image = request.image
        if image.width == 0:
            with self._cv:
                image = self._scheduler.frame
            if image is None:
                response.message = (f"no image in the request and none received yet on "
                                    f"{self._settings.image_topic}")
                return response
        try:
            result, _ = self._segment(image, request.command, expression)
        except (ConversionError, NotActiveError) as err:
            response.message = str(err)
            return response
        except Exception as err:  # noqa: BLE001 - report, do not crash the service
            response.message = f"segmentation failed: {type(err).__name__}: {err}"
            return response
        response.success = True
        response.message = result.note
        response.result = messages.segmentation_msg(result)
        return response


def main(args=None) -> int:
    """Run the node until Ctrl-C (``refseg_node`` / ``ros2 run refseg refseg_node``)."""
    apply_default_profile()  # before rclpy.init: Fast DDS reads it when the participant is made
    try:
        with rclpy.init(args=args):
            try:
                node = RefSegNode()
            except (InvalidParameterValueException, InvalidParameterTypeException) as err:
                print(f"refseg_node: {err}", file=sys.stderr)
                return 2
            # One executor thread: callbacks only store (the worker thread segments), run one at
            # a time in arrival order (a thread pool let a flood of queries finish out of order),
            # and a single thread takes a frame off the wire faster than a thread pool
            # (bench/node_bench.py: 1280x720 receive 35 -> 17 ms). A /refseg/segment call runs
            # its inference on this thread: frames arriving meanwhile wait in the reader
            # (latest wins), queries queue in order.
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            if node.get_parameter("autostart").value:
                if (node.trigger_configure() == TransitionCallbackReturn.SUCCESS
                        and rclpy.ok()):
                    node.trigger_activate()
            try:
                executor.spin()
            finally:
                node.close()
                executor.shutdown()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
