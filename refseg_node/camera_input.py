"""The camera subscriptions: raw or compressed image, depth, CameraInfo; QoS; a frame watchdog.

Created when the node activates and destroyed when it deactivates (an inactive node receives and
deserialises no frames). Topic names: the ``image`` / ``depth`` / ``camera_info`` remappings
(``--ros-args -r image:=/my/camera/image_raw``) when given, else the topic parameters;
``image_transport: compressed`` reads ``sensor_msgs/CompressedImage`` on
``<image topic>/compressed``.

``image_qos: auto`` subscribes with the reliability of the publishers found on each topic
(reliable when every publisher is reliable, else best effort, which matches any publisher) and
follows publishers that appear later. When a publisher is matched but no frame arrives within
``frame_timeout`` seconds, one warning names the usual cause and its fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from refseg_node.ros_io.cdr_image import parse_image
from refseg_node.ros_io.dds_profile import profile_path, profile_variable

RELIABLE_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT_QOS = qos_profile_sensor_data
RELIABLE, BEST_EFFORT = "reliable", "best_effort"


def choose_reliability(image_qos: str, publishers: list) -> str:
    """Return ``reliable`` or ``best_effort`` for a subscription.

    ``image_qos`` is ``reliable``, ``sensor_data`` (best effort) or ``auto``: reliable only
    when there are publishers (``rclpy`` ``TopicEndpointInfo``) and every one is reliable.
    """
    if image_qos == "reliable":
        return RELIABLE
    if image_qos == "sensor_data" or not publishers:
        return BEST_EFFORT
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    return RELIABLE if reliable else BEST_EFFORT


def input_topic(node, name: str, parameter_value: str) -> str:
    """Return ``name`` remapped (``-r image:=...``) if the user remapped it, else the parameter."""
    remapped = node.resolve_topic_name(name)
    if remapped != node.resolve_topic_name(name, only_expand=True):
        return remapped
    return node.resolve_topic_name(parameter_value)


class _Input:
    """One subscription whose reliability follows ``image_qos``."""

    def __init__(self, node, msg_type, topic: str, callback, image_qos: str, log) -> None:
        self.node, self.msg_type, self.topic, self.callback = node, msg_type, topic, callback
        self.image_qos, self.log = image_qos, log
        self.subscription = None
        self.reliability = None
        self.update()

    def update(self) -> None:
        """(Re)subscribe when the reliability to use changed."""
        publishers = self.node.get_publishers_info_by_topic(self.topic)
        wanted = choose_reliability(self.image_qos, publishers)
        if wanted == self.reliability:
            return
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.log(f"{self.topic}: publishers are {wanted.replace('_', ' ')}; resubscribed "
                     f"{wanted.replace('_', ' ')} (image_qos auto)")
        qos = RELIABLE_QOS if wanted == RELIABLE else BEST_EFFORT_QOS
        # Images come serialized and are read by cdr_image (no copy of the pixels on the
        # executor's thread); the other types as rclpy messages.
        raw = self.msg_type is Image
        self.subscription = self.node.create_subscription(
            self.msg_type, self.topic, self._on_raw if raw else self.callback, qos, raw=raw)
        self.reliability = wanted

    def _on_raw(self, buf: bytes) -> None:
        try:
            msg = parse_image(buf)
        except Exception as err:  # noqa: BLE001 - one bad message must not stop the executor
            self.log(f"{self.topic}: a message that is not a readable Image was skipped: {err}")
            return
        self.callback(msg)

    def publisher_count(self) -> int:
        """Return how many publishers the subscription is matched with."""
        return self.subscription.get_publisher_count() if self.subscription else 0

    def close(self) -> None:
        """Destroy the subscription."""
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None


class CameraInputs:
    """The node's camera subscriptions while it is active."""

    def __init__(self, node, settings, on_image: Callable, on_depth: Callable,
                 on_camera_info: Callable, log: Callable[[str], None],
                 warn: Callable[[str], None]) -> None:
        """Subscribe ``node`` to image (raw or compressed), depth and CameraInfo."""
        s = settings
        self.settings, self._warn = s, warn
        image_topic = input_topic(node, "image", s.image_topic)
        image_type = Image
        if s.image_transport == "compressed":
            image_topic, image_type = image_topic.rstrip("/") + "/compressed", CompressedImage
        self._frames = 0
        self._matched_since: float | None = None
        self._frames_at_match = 0
        self._warned = False
        self.image = _Input(node, image_type, image_topic, self._counting(on_image),
                            s.image_qos, log)
        self.depth = _Input(node, Image, input_topic(node, "depth", s.depth_topic), on_depth,
                            s.image_qos, log)
        self.inputs = [
            self.image,
            self.depth,
            _Input(node, CameraInfo, input_topic(node, "camera_info", s.camera_info_topic),
                   on_camera_info, s.image_qos, log),
        ]

    def _counting(self, callback):
        def on_frame(msg):
            self._frames += 1
            callback(msg)
        return on_frame

    def describe(self) -> str:
        """Return the topics and reliabilities, for the log."""
        return ", ".join(f"{i.topic} ({i.msg_type.__name__}, {i.reliability.replace('_', ' ')})"
                         for i in self.inputs)

    def tick(self, now: float | None = None) -> None:
        """Follow the publishers (``auto``) and watch for frames that never arrive."""
        now = time.monotonic() if now is None else now
        if self.settings.image_qos == "auto":
            for i in self.inputs:
                i.update()
        if self.image.publisher_count() == 0:
            self._matched_since = None
            return
        if self._matched_since is None:
            self._matched_since = now
            self._frames_at_match = self._frames
        timeout = self.settings.frame_timeout
        if (not self._warned and timeout > 0 and self._frames == self._frames_at_match
                and now - self._matched_since >= timeout):
            self._warned = True
            self._warn(self.no_frame_warning(now - self._matched_since))

    def no_frame_warning(self, waited: float) -> str:
        """Return the warning for a matched publisher that delivers nothing."""
        i = self.image
        profile = profile_path() or "config/fastdds.xml of the refseg package"
        return (f"{i.publisher_count()} publisher(s) on {i.topic} matched {waited:.0f} s ago but "
                f"no frame arrived (subscribed {i.reliability.replace('_', ' ')}). On one host, "
                "Fast DDS loses best-effort frames larger than its 512 KB shared-memory segment: "
                f"start the camera with {profile_variable()}={profile} (the refseg launch file "
                "does so for what it starts), or make the camera publish reliable (image_qos auto "
                "follows it), or lower its resolution")

    def close(self) -> None:
        """Unsubscribe from every camera topic."""
        for i in self.inputs:
            i.close()
