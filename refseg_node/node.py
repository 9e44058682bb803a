"""The ``refseg`` lifecycle node: segment what a spoken command refers to in a camera stream.

Topics, service and parameters are those of the public contract (docs/INTERFACES.md): the
node's topics and service are relative to it (``~/query``: /refseg/query for a node named
refseg with no namespace), the camera topics to its namespace, so one node runs per camera in
its own namespace. This file only wires the parts together:

- ``parameters``: one spec per parameter (descriptors, checks, the ``Settings``);
- ``language.queries``: command -> expression; ``log_limits``: how often the log repeats;
- ``camera_input``: the camera subscriptions (on activate), their QoS, the frame watchdog;
  ``sensors``: the depth frames and CameraInfo, paired with a colour frame by stamp;
- ``scheduler``: which frame, which query; ``workers``: the worker thread (on the
  ``model_thread``; ``perception.pipeline``: one frame through the model and the depth pairing
  -> ``FrameResult``) and the tracker thread (``perception.tracking``: the last mask carried on);
- ``outputs``: the publishers (``ros_io.messages`` builds what they publish).

Callbacks (one executor thread) only store the latest data; a worker thread segments the latest
frame for the active query, so a slow model never builds a backlog (older frames are dropped,
reported per ``log_period``). With ``tracking`` on, a tracker thread answers the frames that
arrive while the model is busy: it carries the model's last mask onto each of them (optical
flow); the model's next answer replaces the carried mask. The model is
loaded and the camera subscribed on ``activate``, both released on ``deactivate``; with
``autostart`` (the default) the node configures and activates itself, so ``refseg_node`` alone
comes up working.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import Image
from std_msgs.msg import String

import refseg_model
from refseg_model import Segmenter
from refseg_model.fastpath import configure_serving, describe_threads
from refseg_msgs.srv import Segment
from refseg_node.camera_input import CameraInputs
from refseg_node.health import HealthMonitor
from refseg_node.language.queries import resolve_query
from refseg_node.log_limits import Throttle, TokenBucket
from refseg_node.outputs import Outputs
from refseg_node.parameters import PARAMETERS, Settings, SettingsError, update_settings
from refseg_node.perception.pipeline import NotActiveError
from refseg_node.ros_io import messages
from refseg_node.ros_io.dds_profile import apply_default_profile
from refseg_node.ros_io.diagnostics import DIAGNOSTICS_TOPIC, diagnostic_array
from refseg_node.ros_io.image_conversion import ConversionError
from refseg_node.ros_io.ros_compat import refuse_invalid_transitions, ros_session
from refseg_node.workers import Workers

NODE_NAME = "refseg"
# Relative to the node (``~/``): /refseg/query for a node named refseg with no namespace; a
# namespace or another node name moves them (one node per camera).
QUERY_TOPIC = "~/query"
SEGMENT_SERVICE = "~/segment"
TICK_PERIOD = 1.0  # seconds between two looks at the camera inputs and the drop counts
DIAGNOSTICS_PERIOD = 1.0  # seconds between two /diagnostics reports (diagnostic_updater's)
GIL_SWITCH_INTERVAL_S = 5e-5  # see main()


def numeric_path_name(path) -> str:
    """Return a ``NumericPath`` in short: ``bf16+channels_last``, ``fp32+compiled``..."""
    return "+".join([path.precision] + [name for name, on in (
        ("channels_last", path.channels_last), ("compiled", path.compiled)) if on])


def threshold_in_use(parameter: float, checkpoint: float) -> str:
    """Return the threshold the node applies, for the log: the parameter's, else the checkpoint's.

    ``parameter`` below 0 (-1, the default) means the checkpoint's calibrated threshold.
    """
    if parameter < 0:
        return f"threshold {checkpoint:g} (the checkpoint's)"
    return f"threshold {parameter:g} (the threshold parameter; the checkpoint's {checkpoint:g})"


class RefSegNode(LifecycleNode):
    """Language-conditioned segmentation (Hu, Rohrbach, Darrell, ECCV 2016) as a managed node."""

    def __init__(self, **kwargs):
        """Declare the parameters; entities are created on configure."""
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Jazzy ends the process on an invalid transition (activate while active): refuse it.
        refuse_invalid_transitions(self, self.get_logger().warning)
        self._settings: Settings | None = None
        self._workers = Workers(lambda: self._settings, self._warn, self._publish,
                                self.get_logger().debug)
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
        # /diagnostics in every lifecycle state (an inactive node says so), as diagnostic_updater.
        self._health = HealthMonitor()
        self._model_info = ("", "")             # numeric path, device of the loaded model
        self._diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self._on_diagnostics)

    # -- parameters and logging -----------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        update = update_settings(self._settings, {p.name: p.value for p in params})
        if update.error:
            return SetParametersResult(successful=False, reason=update.error)
        if update.settings is not None:
            self._settings = update.settings
        if update.later:
            self.get_logger().info(
                f"parameter(s) {', '.join(update.later)} take effect at the next configure")
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
        return refseg_model.default_checkpoint_path()

    # -- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate the parameters and create publishers, subscriptions and the service."""
        try:
            self._settings = Settings.from_values(
                {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS})
        except SettingsError as err:
            self.get_logger().error(f"cannot configure: {err}")
            return TransitionCallbackReturn.FAILURE
        path = self.checkpoint_path()
        if not path.is_file():
            self.get_logger().error(
                f"cannot configure: checkpoint not found: {path} (set the 'checkpoint' parameter "
                "to a file written by refseg-train)")
            return TransitionCallbackReturn.FAILURE
        self._workers.reset()
        s = self._settings
        self._outputs = Outputs(self, self._warn)
        self._inputs = [self.create_subscription(String, QUERY_TOPIC, self._on_query, 10)]
        self._service = self.create_service(Segment, SEGMENT_SERVICE, self._on_segment)
        self.get_logger().info(
            f"configured: queries on {self._inputs[0].topic_name}, answers under "
            f"{self.get_fully_qualified_name()}/, checkpoint {path}, image {s.image_topic} "
            f"({s.image_transport}, image_qos {s.image_qos}), depth {s.depth_topic}, "
            f"camera_info {s.camera_info_topic}, mode {s.mode}")
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Load the model and start the worker."""
        model = self._workers.model  # torch runs on this one thread only (refseg_node.workers)
        serving = describe_threads(model.call(configure_serving))  # before the model
        path, s = self.checkpoint_path(), self._settings
        try:
            segmenter = model.call(Segmenter.from_checkpoint, path, device=s.device,
                                   precision=s.precision, channels_last=s.channels_last)
        except Exception as err:  # noqa: BLE001 - any load failure keeps the node inactive
            self.get_logger().error(f"cannot activate: loading {path} failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self._active = True
        self._workers.start(segmenter)
        self._at_activate = self._workers.totals()
        self._health.activated(time.monotonic())
        self._model_info = (numeric_path_name(segmenter.numeric_path), str(segmenter.device))
        sensors = self._workers.sensors
        self._camera = CameraInputs(self, s, self._on_image, sensors.add_depth,
                                    sensors.set_camera_info, self.get_logger().info,
                                    self.get_logger().warning)
        self._timer = self.create_timer(TICK_PERIOD, self._on_tick)
        self.get_logger().info(f"active: {segmenter!r}; numeric path "
                               f"{segmenter.numeric_path.reason}; {serving}; "
                               f"{threshold_in_use(s.threshold, segmenter.threshold)}; inputs "
                               f"{self._camera.describe()}")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe from the camera, stop the worker and release the model (GPU freed)."""
        self._close_camera()
        self.close()
        received, processed, dropped = (now - then for now, then in zip(
            self._workers.totals(), self._at_activate))
        self.get_logger().info(f"inactive: model released; {received} frames received, "
                               f"{processed} segmented, {dropped} dropped since activate")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Destroy publishers, subscriptions and the service; forget queries and frames."""
        self._destroy_entities()
        self._workers.reset()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release everything."""
        self._release_all()
        return super().on_shutdown(state)

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release everything and go back to unconfigured."""
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    def _release_all(self) -> None:
        self._close_camera()
        self.close()
        self._destroy_entities()

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
            # An answer waits for its depth frame while a depth publisher is matched, even
            # before the first depth frame (a camera's first colour frame may come first).
            self._workers.sensors.set_depth_publishers(self._camera.depth.publisher_count())
        now = time.monotonic()
        if now - self._last_report >= max(self._settings.log_period, TICK_PERIOD):
            counts = self._workers.take_counts()
            if counts.dropped:
                self.get_logger().warning(
                    f"{counts.processed} frames segmented, {counts.dropped} dropped in the last "
                    f"{now - self._last_report:.0f} s (the model is slower than the camera; "
                    "latest wins)")
            self._last_report = now

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
        self._active = False
        self._health.deactivated()
        self._model_info = ("", "")
        self._workers.stop()

    # -- callbacks: store only -----------------------------------------------------------------
    def _on_query(self, msg: String) -> None:
        if not self._active:
            self._warn("inactive_query", "inactive: query ignored (activate the node first)")
            return
        text = msg.data
        if not text.strip():
            if self._workers.clear_query() and self._query_log.allow(time.monotonic()):
                self.get_logger().info("query cleared")
            return
        expression = self._expression_of(text)
        if expression is None:
            return
        repeated = self._workers.set_query(text, expression)
        if not repeated and self._query_log.allow(time.monotonic()):
            self.get_logger().info(f"query {text[:300]!r} -> expression {expression!r}")

    def _expression_of(self, text: str) -> str | None:
        """Return the expression of a command, or None (warned) when it has none."""
        resolved = resolve_query(text, self._settings.max_query_length,
                                 self._workers.previous_expression())
        for kind, warning in resolved.warnings:
            self._warn(kind, warning)
        return resolved.expression

    def _on_image(self, msg: Image) -> None:
        if self._active:
            self._health.frame(time.monotonic())
            self._workers.add_frame(msg)

    def _publish(self, result, rgb) -> None:
        """Publish one answer (the worker's or the tracker's) while the outputs exist."""
        outputs = self._outputs
        if outputs is not None:
            outputs.publish(result, rgb, self._settings)
            self._health.answer(time.monotonic(), result.tracked, result.target.found,
                                result.point is not None, self._workers.sensors.depth_stream(),
                                None if result.tracked else result.inference_time)

    def _on_diagnostics(self) -> None:
        """Publish the node's health on /diagnostics (once a second, in every state)."""
        s = self._settings
        dropped = self._workers.totals()[2] - self._at_activate[2] if self._active else 0
        numeric_path, device = self._model_info
        report = self._health.report(
            time.monotonic(), active=self._active, model_loaded=self._workers.model_loaded(),
            frame_timeout=s.frame_timeout if s is not None else 0.0, dropped=dropped,
            numeric_path=numeric_path, device=device)
        msg = diagnostic_array(report, self.get_name(), device or "refseg",
                               self.get_clock().now().to_msg())
        try:
            self._diagnostics.publish(msg)
        except Exception as err:  # noqa: BLE001 - RCLError at full load or shutdown: next second
            self._warn("diagnostics", f"/diagnostics not published: {err}")

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
        image = request.image if request.image.width else self._workers.latest_frame()
        if image is None:
            response.message = (f"no image in the request and none received yet on "
                                f"{self._settings.image_topic}")
            return response
        try:
            result, _ = self._workers.segment(image, request.command, expression)
        except (ConversionError, NotActiveError) as err:
            response.message = str(err)
            return response
        except Exception as err:  # noqa: BLE001 - report, do not crash the service
            response.message = f"segmentation failed: {type(err).__name__}: {err}"
            return response
        response.success = True
        response.message = result.reason
        response.result = messages.segmentation_msg(result)
        return response


def main(args=None) -> int:
    """Run the node until Ctrl-C (``refseg_node`` / ``ros2 run refseg refseg_node``)."""
    apply_default_profile()  # before rclpy.init: Fast DDS reads it when the participant is made
    # The executor's own Python after each image callback (about 0.3 ms) runs while the model
    # thread starts on the frame; with CPython's 5 ms switch interval the model thread, back from
    # a GIL-free operator, waited for all of it. 50 us lets the two interleave (measured on 2
    # cores, 2026-12-01: the segmentation's Python around the model 1.3 -> 0.7 ms per frame).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        with ros_session(args):
            try:
                node = RefSegNode()
            except (InvalidParameterValueException, InvalidParameterTypeException) as err:
                print(f"refseg_node: {err}", file=sys.stderr)
                return 2
            # One executor thread: callbacks only store (the worker thread segments), run one at
            # a time in arrival order (a thread pool let a flood of queries finish out of order),
            # and a single thread takes a frame off the wire faster than a thread pool
            # (bench/node_bench.py: 1280x720 receive 35 -> 17 ms). A /refseg/segment call waits
            # here for its inference (on the model thread): frames arriving meanwhile wait in
            # the reader (latest wins), queries queue in order.
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
