"""The ``refseg`` lifecycle node: segment what a spoken command refers to in a camera stream.

Topics, service and parameters are those of the public contract (INTERFACES.md):

- subscriptions ``/refseg/query`` (std_msgs/String; empty clears), the colour image, the aligned
  depth image and the CameraInfo (``image_topic``, ``depth_topic``, ``camera_info_topic``);
- publications ``/refseg/mask``, ``/refseg/centroid``, ``/refseg/target_point``,
  ``/refseg/segmentation``, ``/refseg/overlay``, ``/refseg/marker``;
- service ``/refseg/segment`` (refseg_msgs/Segment).

Callbacks (one executor thread) only store the latest data; a worker thread segments the latest
frame for the active query, so a slow model never builds a backlog (older frames are dropped and
counted). Per-frame timings (receive, wait, model, rest, publish) are logged at debug level. The
model is loaded on ``activate`` and released on ``deactivate``; with ``autostart`` (the default)
the node configures and activates itself, so ``refseg_node`` alone comes up working.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker

from refseg_msgs.msg import Segmentation
from refseg_msgs.srv import Segment
from refseg_node import messages
from refseg_node.command_parser import parse_command
from refseg_node.geometry import Intrinsics, StampedBuffer, target_point
from refseg_node.image_conversion import (
    ConversionError,
    bgr8_msg,
    depth_to_metres,
    to_rgb,
)
from refseg_node.overlay import draw_overlay
from refseg_node.parameters import PARAMETERS, SPECS, Settings, SettingsError, check_value
from refseg_node.targets import no_target, primary_target

NODE_NAME = "refseg"
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
RELIABLE_INPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class Query:
    """The active query and the frame count when it arrived (it is served by later frames)."""

    command: str
    expression: str
    after_frame: int
    served: bool = False


class NotActiveError(RuntimeError):
    """The model is not loaded (the node is not active)."""


def unknown_words(vocabulary, expression: str) -> tuple[str, ...]:
    """Return the words of ``expression`` that ``vocabulary`` lacks (punctuation ignored)."""
    method = getattr(vocabulary, "unknown_words", None)
    if method is not None:
        return tuple(method(expression))
    from refseg_model.text import tokenize

    return tuple(t for t in tokenize(expression)
                 if any(c.isalnum() for c in t) and t not in vocabulary)


def known_word_count(expression: str, unknown: tuple[str, ...]) -> int:
    """Return how many word tokens of ``expression`` are not in ``unknown``."""
    from refseg_model.text import tokenize

    words = [t for t in tokenize(expression) if any(c.isalnum() for c in t)]
    return sum(1 for w in words if w not in unknown)


class RefSegNode(LifecycleNode):
    """Language-conditioned segmentation (Hu, Rohrbach, Darrell, ECCV 2016) as a managed node."""

    def __init__(self, **kwargs):
        """Declare the parameters; entities are created on configure."""
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description + ("" if spec.live else " (applied on configure)")))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._settings: Settings | None = None
        self._cv = threading.Condition()
        self._model_lock = threading.Lock()
        self._segmenter = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = False
        self._last_warning: dict[str, float] = {}
        self._query_tokens, self._query_time = 20.0, time.monotonic()
        self._entities: dict[str, object] = {}
        self._reset_stream_state()

    # -- state ---------------------------------------------------------------------------------
    def _reset_stream_state(self) -> None:
        with self._cv:
            self._query: Query | None = None
            self._frame: Image | None = None
            self._frame_received = 0.0
            self._frame_count = 0
            self._processed_frame = 0
            self._dropped_frames = 0
            self._processed_frames = 0
            self._next_allowed = 0.0
            self._depth = StampedBuffer(30)
            self._camera_info: CameraInfo | None = None
            self._marker_shown = False

    def _values(self) -> dict[str, object]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = self._values()
        for param in params:
            if param.name not in SPECS:
                continue
            try:
                check_value(param.name, param.value)
            except (SettingsError, TypeError, ValueError) as err:
                return SetParametersResult(successful=False, reason=str(err))
            values[param.name] = param.value
        if self._settings is not None:
            live = {p.name: values[p.name] for p in params
                    if p.name in SPECS and SPECS[p.name].live}
            if live:
                self._settings = replace(self._settings, **live)
            later = [p.name for p in params if p.name in SPECS and not SPECS[p.name].live]
            if later:
                self.get_logger().info(
                    f"parameter(s) {', '.join(later)} take effect at the next configure")
        return SetParametersResult(successful=True)

    def _warn(self, kind: str, text: str) -> None:
        """Log a warning, at most once per ``log_period`` seconds for each ``kind``."""
        self._log_throttled(kind, text)

    def _log_throttled(self, kind: str, text: str, period: float | None = None) -> None:
        """Log ``text`` unless a message of the same ``kind`` was logged under ``period`` ago."""
        if period is None:
            period = self._settings.log_period if self._settings else 5.0
        now = time.monotonic()
        last = self._last_warning.get(kind)
        if last is None or now - last >= period:
            self._last_warning[kind] = now
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
        except (SettingsError, TypeError, ValueError) as err:
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
        pub = self.create_lifecycle_publisher
        self._entities = {
            "mask": pub(Image, "/refseg/mask", OUTPUT_QOS),
            "centroid": pub(messages.PointStamped, "/refseg/centroid", OUTPUT_QOS),
            "target_point": pub(messages.PointStamped, "/refseg/target_point", OUTPUT_QOS),
            "segmentation": pub(Segmentation, "/refseg/segmentation", OUTPUT_QOS),
            "overlay": pub(Image, "/refseg/overlay", OUTPUT_QOS),
            "marker": pub(Marker, "/refseg/marker", OUTPUT_QOS),
        }
        sensor_qos = qos_profile_sensor_data if s.image_qos == "sensor_data" else RELIABLE_INPUT_QOS
        sub = self.create_subscription
        self._subscriptions_ = [
            sub(String, "/refseg/query", self._on_query, 10),
            sub(Image, s.image_topic, self._on_image, sensor_qos),
            sub(Image, s.depth_topic, self._on_depth, sensor_qos),
            sub(CameraInfo, s.camera_info_topic, self._on_camera_info, sensor_qos),
        ]
        self._service = self.create_service(Segment, "/refseg/segment", self._on_segment)
        self.get_logger().info(
            f"configured: checkpoint {path}, image {s.image_topic} ({s.image_qos}), depth "
            f"{s.depth_topic}, camera_info {s.camera_info_topic}, mode {s.mode}")
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Load the model and start the worker."""
        from refseg_model import Segmenter
        from refseg_model.fastpath import configure_serving, describe_threads

        serving = describe_threads(configure_serving())  # threads + allocator, before the model
        path = self.checkpoint_path()
        try:
            segmenter = Segmenter.from_checkpoint(
                path, device=self._settings.device, precision=self._settings.precision,
                channels_last=self._settings.channels_last)
        except Exception as err:  # noqa: BLE001 - any load failure keeps the node inactive
            self.get_logger().error(f"cannot activate: loading {path} failed: {err}")
            return TransitionCallbackReturn.FAILURE
        with self._model_lock:
            self._segmenter = segmenter
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_worker, name="refseg-worker",
                                        daemon=True)
        self._active = True
        self._worker.start()
        self.get_logger().info(f"active: {segmenter!r}; numeric path "
                               f"{segmenter.numeric_path.reason}; {serving}")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop the worker and release the model (GPU memory freed)."""
        self._stop_worker_and_release()
        self.get_logger().info("inactive: model released")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Destroy publishers, subscriptions and the service; forget queries and frames."""
        self._destroy_entities()
        self._reset_stream_state()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release everything."""
        self._stop_worker_and_release()
        self._destroy_entities()
        return super().on_shutdown(state)

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release everything and go back to unconfigured."""
        self._stop_worker_and_release()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def _stop_worker_and_release(self) -> None:
        self._active = False
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._worker = None
        with self._model_lock:
            if self._segmenter is not None:
                self._segmenter.release()
                self._segmenter = None

    def _destroy_entities(self) -> None:
        for publisher in self._entities.values():
            self.destroy_lifecycle_publisher(publisher)
        self._entities = {}
        for subscription in getattr(self, "_subscriptions_", []):
            self.destroy_subscription(subscription)
        self._subscriptions_ = []
        if getattr(self, "_service", None) is not None:
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
                cleared = self._query is not None
                self._query = None
            if cleared and self._query_log_budget():
                self.get_logger().info("query cleared")
            return
        expression = self._expression_of(text)
        if expression is None:
            return
        with self._cv:
            repeated = self._query is not None and self._query.command == text
            self._query = Query(text, expression, after_frame=self._frame_count)
            self._cv.notify_all()
        if not repeated and self._query_log_budget():
            self.get_logger().info(f"query {text[:300]!r} -> expression {expression!r}")

    def _query_log_budget(self) -> bool:
        """Allow a burst of 20 query logs, then 10 a second (a flood of queries is not logged)."""
        now = time.monotonic()
        self._query_tokens = min(20.0, self._query_tokens + 10.0 * (now - self._query_time))
        self._query_time = now
        if self._query_tokens >= 1.0:
            self._query_tokens -= 1.0
            return True
        return False

    def _expression_of(self, text: str) -> str | None:
        """Return the expression of a command, or None (logged) when it has none."""
        parsed = parse_command(text, self._settings.max_query_length)
        if parsed.truncated:
            self._warn("long_query", f"query of {len(text)} characters cut to "
                                     f"{self._settings.max_query_length}: {parsed.expression!r}")
        if parsed.anaphoric:
            with self._cv:
                previous = self._query
            if previous is None:
                self._warn("anaphoric", f"query {text!r} names no object and there is no earlier "
                                        "query it could refer to; ignored")
                return None
            return previous.expression
        return parsed.expression

    def _on_image(self, msg: Image) -> None:
        if not self._active:
            return
        received = time.time()
        with self._cv:
            self._frame_received = received
            if (self._frame is not None and self._processed_frame < self._frame_count
                    and self._query is not None):
                self._dropped_frames += 1
            self._frame = msg
            self._frame_count += 1
            self._cv.notify_all()

    def _on_depth(self, msg: Image) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._cv:
            self._depth.add(stamp, msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        with self._cv:
            self._camera_info = msg

    # -- worker --------------------------------------------------------------------------------
    def _next_job(self) -> tuple[Image, Query, float] | float | None:
        """Return (frame, query, receive time) to process, seconds to wait (rate limit), or None."""
        q = self._query
        if q is None or self._frame is None or self._frame_count <= self._processed_frame:
            return None
        if self._frame_count <= q.after_frame or (self._settings.mode == "once" and q.served):
            return None
        wait = self._next_allowed - time.monotonic()
        if wait > 0:
            return wait
        self._processed_frame = self._frame_count
        if self._settings.mode == "once":
            self._query = replace(q, served=True)
        rate = self._settings.max_rate_hz
        self._next_allowed = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
        return self._frame, q, self._frame_received

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                job = self._next_job()
                if not isinstance(job, tuple):
                    self._cv.wait(timeout=job if job is not None else 0.5)
                    continue
            try:
                self._process(*job)
            except Exception as err:  # noqa: BLE001 - the worker must survive any frame
                self._warn("worker", f"frame skipped: {type(err).__name__}: {err}")

    def _process(self, frame: Image, query: Query, received: float) -> None:
        start = time.time()
        try:
            result, rgb = self._segment(frame, query.command, query.expression)
        except ConversionError as err:
            self._warn("bad_image", f"image on {self._settings.image_topic} skipped: {err}")
            return
        except NotActiveError:
            return
        with self._cv:
            self._processed_frames += 1
            dropped, processed = self._dropped_frames, self._processed_frames
        if dropped:
            self._warn("dropped", f"{processed} frames segmented, {dropped} dropped since "
                                  "configure (the model is slower than the camera; latest wins)")
        segmented = time.time()
        self._publish_result(result, rgb)
        stamp = frame.header.stamp.sec + frame.header.stamp.nanosec * 1e-9
        self.get_logger().debug(
            f"frame timings ms: stamp->received {1e3 * (received - stamp):.1f}, waited "
            f"{1e3 * (start - received):.1f}, model {1e3 * result.inference_time:.1f}, rest of "
            f"segmentation {1e3 * (segmented - start - result.inference_time):.1f}, publish "
            f"{1e3 * (time.time() - segmented):.1f}")

    # -- segmentation (worker and service) -----------------------------------------------------
    def _segment(self, image: Image, command: str, expression: str):
        """Segment ``expression`` in ``image``; return (FrameResult, rgb)."""
        s = self._settings
        rgb = to_rgb(image, s.max_image_pixels)
        header = image.header
        with self._model_lock:
            segmenter = self._segmenter
            if segmenter is None:
                raise NotActiveError("the model is not loaded: the node is not active")
            unknown = unknown_words(segmenter.vocabulary, expression)
            note = ""
            if known_word_count(expression, unknown) == 0:
                note = (f"none of the words of {expression!r} are in the model's vocabulary; "
                        "nothing segmented")
                mask, target, elapsed = None, None, 0.0
            else:
                start = time.perf_counter()
                prediction = segmenter.predict(rgb, expression, threshold=s.threshold)
                elapsed = time.perf_counter() - start
                mask = prediction.mask
                target = primary_target(prediction.mask, prediction.probs)
        if mask is None:
            self._warn("unknown_words", note)
            mask = np.zeros(rgb.shape[:2], bool)
            target = no_target(mask.shape)
        elif unknown:
            self._warn("unknown_words", f"words not in the model's vocabulary, ignored: "
                                        f"{', '.join(unknown)} (expression {expression!r})")
        point = None
        if target.found:
            point, why = self._target_point(image, target)
            note = note or why
        elif not note:
            note = f"no pixel passed the threshold {s.threshold}"
        result = messages.FrameResult(
            header=header, command=command, expression=expression, mask=mask, target=target,
            threshold=s.threshold, unknown_words=unknown, inference_time=elapsed, point=point,
            note=note)
        return result, rgb

    def _target_point(self, image: Image, target) -> tuple[tuple | None, str]:
        """Return the 3D point of ``target`` from the paired depth frame, or (None, reason)."""
        stamp = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec
        tolerance = int(self._settings.depth_sync_tolerance * 1e9)
        with self._cv:
            have_depth = len(self._depth) > 0
            depth = self._depth.closest(stamp, tolerance)
            info = self._camera_info
        if not have_depth:
            return None, ""
        if depth is None:
            why = (f"no depth frame within {self._settings.depth_sync_tolerance} s of the colour "
                   "frame's stamp")
            self._warn("no_depth_pair", f"no 3D point: {why}")
            return None, why
        if info is None:
            why = f"no CameraInfo received on {self._settings.camera_info_topic}"
            self._warn("no_camera_info", f"no 3D point: {why}")
            return None, why
        try:
            depth_m = depth_to_metres(depth, self._settings.max_image_pixels)
            k = Intrinsics.from_k(info.k, info.width, info.height)
        except (ConversionError, ValueError) as err:
            self._warn("bad_depth", f"no 3D point: {err}")
            return None, str(err)
        result = target_point(depth_m, target.region, k, target.centroid)
        if result.point is None:
            self._warn("invalid_depth", f"no 3D point: {result.reason}")
        return result.point, result.reason

    # -- output --------------------------------------------------------------------------------
    def _publish(self, name: str, msg) -> None:
        publisher = self._entities.get(name)
        if publisher is None:
            return
        try:
            publisher.publish(msg)
        except Exception as err:  # noqa: BLE001 - a failed publish must not stop the node
            self._warn(f"publish_{name}", f"could not publish on {publisher.topic_name}: {err}")

    def _publish_result(self, result: messages.FrameResult, rgb) -> None:
        s = self._settings
        segmentation = messages.segmentation_msg(result)
        self._publish("mask", segmentation.mask)
        if result.target.found:
            self._publish("centroid", messages.centroid_msg(result))
        if result.point is not None:
            self._publish("target_point", segmentation.target_point)
        self._publish("segmentation", segmentation)
        if result.point is not None or self._marker_shown:
            self._publish("marker", messages.marker_msg(result.header, result.point,
                                                        s.marker_scale))
            self._marker_shown = result.point is not None
        overlay = self._entities.get("overlay")
        if s.publish_overlay and overlay is not None and overlay.get_subscription_count() > 0:
            text = result.expression if result.target.found else (
                f"{result.expression}: not found")
            self._publish("overlay", bgr8_msg(draw_overlay(rgb, result.mask, result.target,
                                                            text), result.header))

    # -- service -------------------------------------------------------------------------------
    def _on_segment(self, request: Segment.Request, response: Segment.Response):
        if not self._active:
            response.success = False
            response.message = "the node is not active: activate it through its lifecycle"
            return response
        parsed_expression = self._expression_of(request.command)
        if not request.command.strip() or not parsed_expression:
            response.success = False
            response.message = f"the command {request.command!r} names no object to segment"
            return response
        image = request.image
        if image.width == 0:
            with self._cv:
                image = self._frame
            if image is None:
                response.success = False
                response.message = (f"no image in the request and none received yet on "
                                    f"{self._settings.image_topic}")
                return response
        try:
            result, _ = self._segment(image, request.command, parsed_expression)
        except (ConversionError, NotActiveError) as err:
            response.success = False
            response.message = str(err)
            return response
        except Exception as err:  # noqa: BLE001 - report, do not crash the service
            response.success = False
            response.message = f"segmentation failed: {type(err).__name__}: {err}"
            return response
        response.success = True
        response.message = result.note
        response.result = messages.segmentation_msg(result)
        return response


def main(args=None) -> None:
    """Run the node until Ctrl-C (``refseg_node`` / ``ros2 run refseg refseg_node``)."""
    try:
        with rclpy.init(args=args):
            node = RefSegNode()
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


if __name__ == "__main__":
    main()
