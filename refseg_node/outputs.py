"""The node's publishers, and the one place a FrameResult becomes published messages.

``Outputs.publish(result, rgb, settings)`` builds the output messages of one frame
(``messages``) and publishes them on the topics that have subscribers; a new output (a topic,
a field) is added here and in ``messages``. A failed publish is warned about, never raised.
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import Marker

from refseg_model.drawing import draw_overlay
from refseg_msgs.msg import Segmentation
from refseg_node.ros_io import extent_messages, messages
from refseg_node.ros_io.image_conversion import bgr8_msg

OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# (name, message type, topic) of every output.
TOPICS = (
    ("mask", Image, "/refseg/mask"),
    ("centroid", messages.PointStamped, "/refseg/centroid"),
    ("target_point", messages.PointStamped, "/refseg/target_point"),
    ("segmentation", Segmentation, "/refseg/segmentation"),
    ("overlay", Image, "/refseg/overlay"),
    ("marker", Marker, "/refseg/marker"),
    ("target_cloud", PointCloud2, "/refseg/target_cloud"),
)


class Outputs:
    """Lifecycle publishers of the node's topics (created on configure, destroyed on cleanup)."""

    def __init__(self, node, warn: Callable[[str, str], None]) -> None:
        """Create the publishers on lifecycle node ``node``."""
        self._node = node
        self._warn = warn
        self.publishers = {name: node.create_lifecycle_publisher(msg_type, topic, OUTPUT_QOS)
                           for name, msg_type, topic in TOPICS}
        self._marker_shown = False
        self._extent_shown = False

    def destroy(self) -> None:
        """Destroy every publisher."""
        for publisher in self.publishers.values():
            self._node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}

    def _publish(self, name: str, msg) -> bool:
        """Publish ``msg`` on output ``name`` if anyone subscribes; return whether it went out.

        ``msg`` may be a callable that builds the message: it is then built only when it is
        wanted (a topic nobody subscribes to costs nothing, as with image_transport).
        """
        if not self.wanted(name):
            return False
        publisher = self.publishers[name]
        try:
            publisher.publish(msg() if callable(msg) else msg)
        except Exception as err:  # noqa: BLE001 - a failed publish must not stop the node
            self._warn(f"publish_{name}", f"could not publish on {publisher.topic_name}: {err}")
            return False
        return True

    def wanted(self, name: str) -> bool:
        """Return whether anyone subscribes to output ``name``."""
        publisher = self.publishers.get(name)
        return publisher is not None and publisher.get_subscription_count() > 0

    def publish(self, result: messages.FrameResult, rgb, settings) -> None:
        """Publish every output of one segmented frame."""
        segmentation = messages.segmentation_msg(result)
        # The full answer first (a planner's one message: mask, target, regions, 3D): the
        # other outputs are parts of it and must not delay it.
        self._publish("segmentation", segmentation)
        self._publish("mask", segmentation.mask)
        if result.target.found:
            self._publish("centroid", lambda: messages.centroid_msg(result))
        if result.point is not None:
            self._publish("target_point", segmentation.target_point)
        if result.point is not None or self._marker_shown:
            shown = self._publish("marker", lambda: messages.marker_msg(
                result.header, result.point, settings.marker_scale))
            self._marker_shown = shown and result.point is not None
        self._publish_geometry(result)
        if settings.publish_overlay:
            self._publish("overlay", lambda: self._overlay_msg(result, rgb))

    @staticmethod
    def _overlay_msg(result: messages.FrameResult, rgb) -> Image:
        """Return the overlay picture's ``bgr8`` message (the mask, target and words drawn)."""
        target = result.target
        text = result.expression if target.found else f"{result.expression}: not found"
        picture = draw_overlay(rgb, result.mask, text,
                               primary=target.region if target.found else None,
                               centroid=target.centroid if target.found else None)
        return bgr8_msg(picture, result.header)

    def _publish_geometry(self, result: messages.FrameResult) -> None:
        """Publish the target's box and axes markers and, when subscribed, its points."""
        geometry = result.geometry
        extent = geometry.extent if geometry is not None else None
        if (extent is not None or self._extent_shown) and self.wanted("marker"):
            shown = [self._publish("marker", marker)
                     for marker in extent_messages.extent_markers(result.header, extent)]
            self._extent_shown = all(shown) and extent is not None
        else:
            self._extent_shown = False
        if geometry is not None and len(geometry.points):
            self._publish("target_cloud", lambda: extent_messages.target_cloud_msg(
                result.header, geometry.points))
