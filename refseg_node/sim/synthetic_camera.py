"""A camera for machines without one: the synthetic tabletop world, or a replayed folder or video.

Publishes at ``rate`` Hz, on the topics the ``refseg`` node reads by default (relative to the
namespace: ``/camera/image_raw`` without one, ``/head/camera/image_raw`` in ``/head``, so a
camera and a refseg node in one namespace find each other):

- ``camera/image_raw`` (sensor_msgs/Image, rgb8),
- ``camera/depth/image_raw`` (16UC1, millimetres, aligned to the colour image; synthetic only),
- ``camera/camera_info`` (sensor_msgs/CameraInfo with the world's intrinsics; synthetic only),

all with the same stamp and the frame ``frame_id`` (``camera_color_optical_frame``).

Parameters: ``scene`` (``demo``: the scene where "the red cup on the left" has one referent;
``random``: ``generate_scene(seed)``), ``seed``, ``width``, ``height``, ``rate``, ``qos``
(``sensor_data`` or ``reliable``), ``scene_period`` (seconds between new random scenes, 0 =
keep one), ``source`` (a folder of images or a video file to replay instead of the world; images
only, no depth), ``loop`` (replay again from the start at the end), ``wait_for_subscribers``
(publish nothing until that many subscriptions match the image topic; 0 = start at once),
``wait_for_node`` (publish nothing until that node, e.g. ``refseg`` or ``/head/refseg``: a name
relative to the camera's namespace or a full one, has a subscription on the image topic that the
camera's QoS can serve, and every such subscription in the graph is matched; empty = no wait).
``wait_for_subscribers`` counts any subscriber: a viewer or a recorder already on the topic
satisfies it before the node that should get the first frame is matched, and a subscription
whose QoS the camera cannot serve (a reliable one, for the best-effort default) never matches;
``wait_for_node`` waits for the one that matters. With both, both must hold.

The shipped Fast DDS profile (``config/fastdds.xml``) is applied unless the user set one, so
its best-effort 640x480 frames arrive on one host.

A moving camera: ``motion`` ``pan`` turns the camera left and right about its vertical axis
(``pan_amplitude`` degrees, one sweep there and back every ``pan_period`` seconds; the views of a
sweep are rendered at start-up), ``none`` (the default) keeps it still. With
``publish_ground_truth`` (demo scene) the camera also publishes, with each frame's stamp, the true
mask of the demo's target on ``~/target_mask`` (``/synthetic_camera/target_mask`` for the
default name; mono8, 255 = the red cup on the left) and the camera's pose in the world on
``~/camera_pose``
(geometry_msgs/PoseStamped, frame ``synthetic_world``: x right, y along the table, z up), for
measuring a tracker or a segmenter against the truth.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from refseg_model.synth import generate_scene, make_demo_scene
from refseg_model.synth.motion import pan_offsets, render_view
from refseg_node.ros_io.dds_profile import apply_default_profile
from refseg_node.ros_io.image_conversion import depth16_msg, mono8_msg, rgb8_msg
from refseg_node.ros_io.ros_compat import ros_session

FRAME_ID = "camera_color_optical_frame"
IMAGE_TOPIC = "camera/image_raw"
DEPTH_TOPIC = "camera/depth/image_raw"
CAMERA_INFO_TOPIC = "camera/camera_info"
TARGET_MASK_TOPIC = "~/target_mask"
CAMERA_POSE_TOPIC = "~/camera_pose"
WORLD_FRAME = "synthetic_world"
MOTIONS = ("none", "pan")
DEMO_TARGET_ID = 1  # make_demo_scene puts the left red cup first
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class SourceError(ValueError):
    """A replay source (folder or video) that cannot be read."""


def camera_info_msg(k: np.ndarray, width: int, height: int, header: Header) -> CameraInfo:
    """Return the CameraInfo of an ideal pinhole camera (no distortion) with matrix ``k``."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in k.ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    p = np.zeros((3, 4))
    p[:, :3] = k
    msg.p = [float(v) for v in p.ravel()]
    return msg


class ImageFolder:
    """Sorted image files of a folder, read one at a time as RGB arrays."""

    def __init__(self, folder: Path):
        """List the images of ``folder`` (raises :class:`SourceError` when there are none)."""
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        self.index = 0

    def read(self, loop: bool) -> np.ndarray | None:
        """Return the next image as HxWx3 uint8 RGB, or None at the end (without ``loop``)."""
        for _ in range(len(self.files)):
            if self.index >= len(self.files):
                if not loop:
                    return None
                self.index = 0
            path = self.files[self.index]
            self.index += 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None:
                return np.ascontiguousarray(bgr[:, :, ::-1])
        raise SourceError(f"none of the {len(self.files)} image files could be decoded")


class VideoFile:
    """Frames of a video file (cv2.VideoCapture), as RGB arrays."""

    def __init__(self, path: Path):
        """Open ``path`` (raises :class:`SourceError` when OpenCV cannot read it)."""
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        ok, _ = self.capture.read() if self.capture.isOpened() else (False, None)
        if not ok:
            raise SourceError(f"cannot read video frames from {path}")
        self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def read(self, loop: bool) -> np.ndarray | None:
        """Return the next frame as HxWx3 uint8 RGB, or None at the end (without ``loop``)."""
        ok, bgr = self.capture.read()
        if not ok and loop:
            self.capture.release()
            self.capture = cv2.VideoCapture(str(self.path))
            ok, bgr = self.capture.read()
        return np.ascontiguousarray(bgr[:, :, ::-1]) if ok else None


def pose_msg(rotation: np.ndarray, centre: np.ndarray, header: Header) -> PoseStamped:
    """Return the pose of a camera (camera-to-world ``rotation``, ``centre``) in the world."""
    x, y, z, w = Rotation.from_matrix(np.asarray(rotation, dtype=np.float64)).as_quat()
    msg = PoseStamped()
    msg.header = header
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in centre)
    msg.pose.orientation.x, msg.pose.orientation.y = float(x), float(y)
    msg.pose.orientation.z, msg.pose.orientation.w = float(z), float(w)
    return msg


@dataclass
class Frame:
    """The messages of one synthetic frame (stamped when published)."""

    image: Image
    depth: Image
    target_mask: Image | None = None
    pose: PoseStamped | None = None


def open_source(path: str):
    """Return an :class:`ImageFolder` or :class:`VideoFile` for ``path``."""
    source = Path(path).expanduser()
    if source.is_dir():
        return ImageFolder(source)
    if source.is_file():
        return VideoFile(source)
    raise SourceError(f"source {source} is neither a folder of images nor a video file")


class SyntheticCamera(Node):
    """Publish the synthetic world (or a replayed source) like an RGB-D camera driver."""

    def __init__(self, **kwargs):
        """Declare parameters, build the first frame and start the timer."""
        super().__init__("synthetic_camera", **kwargs)
        declare = self.declare_parameter
        self.scene_kind = declare("scene", "demo").value
        self.seed = int(declare("seed", 0).value)
        self.width = int(declare("width", 640).value)
        self.height = int(declare("height", 480).value)
        rate = float(declare("rate", 10.0).value)
        qos_name = declare("qos", "sensor_data").value
        self.scene_period = float(declare("scene_period", 0.0).value)
        source = declare("source", "").value
        self.loop = bool(declare("loop", True).value)
        self.frame_id = declare("frame_id", FRAME_ID).value
        self.wait_for_subscribers = int(declare("wait_for_subscribers", 0).value)
        self.wait_for_node = full_node_name(declare("wait_for_node", "").value,
                                            self.get_namespace())
        self.motion = declare("motion", "none").value
        self.pan_amplitude = float(declare("pan_amplitude", 4.0).value)
        self.pan_period = float(declare("pan_period", 4.0).value)
        self.ground_truth = bool(declare("publish_ground_truth", False).value)
        if self.motion not in MOTIONS:
            raise SourceError(f"motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}")
        if self.motion == "pan" and self.pan_period <= 0:
            raise SourceError(f"pan_period must be > 0 s, got {self.pan_period}")
        if self.ground_truth and self.scene_kind != "demo":
            raise SourceError("publish_ground_truth needs scene:=demo (the only scene with one "
                              "named target)")
        if self.scene_kind not in ("demo", "random"):
            raise SourceError(f"scene must be demo or random, got {self.scene_kind!r}")
        if qos_name not in ("sensor_data", "reliable"):
            raise SourceError(f"qos must be sensor_data or reliable, got {qos_name!r}")
        if rate <= 0:
            raise SourceError(f"rate must be > 0 Hz, got {rate}")
        qos = (qos_profile_sensor_data if qos_name == "sensor_data"
               else QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self.qos = qos
        self.image_pub = self.create_publisher(Image, IMAGE_TOPIC, qos)
        self.depth_pub = self.create_publisher(Image, DEPTH_TOPIC, qos)
        self.info_pub = self.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, qos)
        if self.ground_truth:
            truth_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self.mask_pub = self.create_publisher(Image, TARGET_MASK_TOPIC, truth_qos)
            self.pose_pub = self.create_publisher(PoseStamped, CAMERA_POSE_TOPIC, truth_qos)
        self.source = open_source(source) if source else None
        self.frames_published = 0
        self._failed_publishes = 0
        self._scene_index = 0
        self._since_scene = 0.0
        self.period = 1.0 / rate
        if self.source is None:
            self._load_scene()
        self.timer = self.create_timer(self.period, self._tick)

    def _load_scene(self) -> None:
        header = Header(frame_id=self.frame_id)
        if self.scene_kind == "demo":
            scene, command, _ = make_demo_scene(self.seed, self.width, self.height)
            self.get_logger().info(
                f"demo scene {self.width}x{self.height} (seed {self.seed}); try: ros2 topic pub "
                f"--once /refseg/query std_msgs/msg/String \"{{data: '{command}'}}\"")
        else:
            seed = self.seed + self._scene_index
            scene = generate_scene(seed, self.width, self.height)
            self.get_logger().info(f"random scene {self.width}x{self.height} (seed {seed})")
        self.info_msg = camera_info_msg(scene.K, scene.width, scene.height, header)
        self._frame_index = 0
        if self.motion == "pan":
            self.frames = self._pan_frames(scene, header)
            return
        frame = Frame(rgb8_msg(scene.rgb, header), depth16_msg(scene.depth_m, header))
        if self.ground_truth:
            world = scene.world
            frame.target_mask = mono8_msg(scene.object_mask(DEMO_TARGET_ID), header)
            frame.pose = pose_msg(world.camera.R, world.camera.C, Header(frame_id=WORLD_FRAME))
        self.frames = [frame]

    def _pan_frames(self, scene, header: Header) -> list[Frame]:
        """Render the views of one pan sweep (a view per frame; equal angles rendered once)."""
        rate = 1.0 / self.period
        angles = pan_offsets(self.pan_amplitude, self.pan_period, rate)
        views: dict[float, Frame] = {}
        frames = []
        for i, angle in enumerate(angles):
            key = round(angle, 9)
            if key not in views:
                view = render_view(scene, angle, noise_seed=i)
                frame = Frame(rgb8_msg(view.rgb, header), depth16_msg(view.depth_m, header))
                if self.ground_truth:
                    frame.target_mask = mono8_msg(view.object_mask(DEMO_TARGET_ID), header)
                    frame.pose = pose_msg(view.camera.R, view.camera.C,
                                          Header(frame_id=WORLD_FRAME))
                views[key] = frame
            frames.append(views[key])
        self.get_logger().info(
            f"pan: +-{self.pan_amplitude} degrees every {self.pan_period} s, {len(frames)} "
            f"frames ({len(views)} views rendered)")
        return frames

    def _publish(self, publisher, msg) -> None:
        try:
            publisher.publish(msg)
        except Exception as err:  # noqa: BLE001 - one failed publish must not stop the camera
            self._failed_publishes += 1
            self.get_logger().warning(f"could not publish on {publisher.topic_name}: {err}",
                                      throttle_duration_sec=5.0)

    def _node_matched(self) -> bool:
        """Return whether ``wait_for_node``'s image subscription is matched.

        The graph names the subscriptions' nodes, the publisher only counts its matches: the
        node's subscription must be in the graph with a QoS this publisher serves, and the
        publisher matched with at least as many subscriptions as the graph has such ones.
        """
        served = [info for info in self.get_subscriptions_info_by_topic(self.image_pub.topic_name)
                  if serves(self.qos, info.qos_profile)]
        named = any(full_node_name(info.node_name, info.node_namespace) == self.wait_for_node
                    for info in served)
        return named and self.image_pub.get_subscription_count() >= len(served)

    def _waiting(self) -> bool:
        """Return whether to publish nothing yet (``wait_for_subscribers``, ``wait_for_node``)."""
        if not (self.wait_for_subscribers or self.wait_for_node):
            return False
        if self.image_pub.get_subscription_count() < self.wait_for_subscribers:
            return True
        if self.wait_for_node and not self._node_matched():
            return True
        matched = self.image_pub.get_subscription_count()
        waited = (f"{self.wait_for_node}'s subscription" if self.wait_for_node
                  else f"{self.wait_for_subscribers} subscriber(s)")
        self.get_logger().info(f"{waited} matched ({matched} in all): publishing")
        self.wait_for_subscribers, self.wait_for_node = 0, ""
        return False

    def _tick(self) -> None:
        if self._waiting():
            return
        stamp = self.get_clock().now().to_msg()
        if self.source is not None:
            rgb = self.source.read(self.loop)
            if rgb is None:
                self.get_logger().info(f"end of the source after {self.frames_published} frames")
                self.timer.cancel()
                return
            self._publish(self.image_pub, rgb8_msg(rgb, Header(stamp=stamp,
                                                                 frame_id=self.frame_id)))
            self.frames_published += 1
            return
        if self.scene_kind == "random" and self.scene_period > 0:
            self._since_scene += self.period
            if self._since_scene >= self.scene_period:
                self._since_scene = 0.0
                self._scene_index += 1
                self._load_scene()
        frame = self.frames[self._frame_index % len(self.frames)]
        self._frame_index += 1
        for msg in (frame.image, frame.depth, self.info_msg, frame.target_mask, frame.pose):
            if msg is not None:
                msg.header.stamp = stamp
        if self.ground_truth:
            # The truth first: a listener that has a frame's output can look its truth up.
            self._publish(self.mask_pub, frame.target_mask)
            self._publish(self.pose_pub, frame.pose)
        self._publish(self.depth_pub, frame.depth)
        self._publish(self.info_pub, self.info_msg)
        self._publish(self.image_pub, frame.image)
        self.frames_published += 1


def serves(publisher: QoSProfile, subscription: QoSProfile) -> bool:
    """Return whether a publisher of QoS ``publisher`` can match ``subscription``.

    Reliability and durability decide (a best-effort publisher serves best-effort subscriptions
    only, a volatile one volatile subscriptions only). rclpy's ``qos_check_compatible`` is no
    help here: the graph reports unset deadlines and lease durations as infinite, which it
    takes for set ones.
    """
    reliable = (publisher.reliability == ReliabilityPolicy.RELIABLE
                or subscription.reliability == ReliabilityPolicy.BEST_EFFORT)
    durable = (publisher.durability == DurabilityPolicy.TRANSIENT_LOCAL
               or subscription.durability == DurabilityPolicy.VOLATILE)
    return reliable and durable


def full_node_name(name: str, namespace: str) -> str:
    """Return ``name`` as a full node name (``/ns/name``); relative names are in ``namespace``.

    An empty ``name`` stays empty.
    """
    if not name or name.startswith("/"):
        return name
    return f"{namespace.rstrip('/')}/{name}"


def main(args=None) -> int:
    """Run the synthetic camera until Ctrl-C (``synthetic_camera`` / ``ros2 run refseg ...``).

    The shipped Fast DDS profile is applied first (unless the user set one): best-effort frames
    of camera size then arrive on one host.
    """
    apply_default_profile()
    try:
        with ros_session(args):
            try:
                node = SyntheticCamera()
            except SourceError as err:
                print(f"synthetic_camera: {err}", file=sys.stderr)
                return 2
            try:
                rclpy.spin(node)
            finally:
                done = f"published {node.frames_published} frames"
                if rclpy.ok():
                    node.get_logger().info(done)
                else:  # Ctrl-C has shut the context down: /rosout is gone, the console is not
                    print(f"[synthetic_camera] {done}", file=sys.stderr)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
