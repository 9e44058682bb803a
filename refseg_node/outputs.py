"""The node's publishers: where a FrameResult's messages go out, on the topics with subscribers.

``Outputs.publish(result, rgb, settings)`` has the output messages of one frame built
(``refseg_node.ros_io.messages``, the one builder) and publishes them; a new output is a topic
here and a builder there. A failed publish is warned about, never raised.
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import Marker

from refseg_msgs.msg import Segmentation
from refseg_node.perception.pipeline import FrameResult
from refseg_node.ros_io import messages

OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# (name, message type, topic) of every output, relative to the node: ``~/mask`` is
# /refseg/mask for a node named refseg with no namespace, /head/refseg/mask in namespace /head.
TOPICS = (
    ("mask", Image, "~/mask"),
    ("centroid", messages.PointStamped, "~/centroid"),
    ("target_point", messages.PointStamped, "~/target_point"),
    ("segmentation", Segmentation, "~/segmentation"),
    ("overlay", Image, "~/overlay"),
    ("marker", Marker, "~/marker"),
    ("target_cloud", PointCloud2, "~/target_cloud"),
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

    def publish(self, result: FrameResult, rgb, settings) -> None:
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
            self._publish("overlay", lambda: messages.overlay_msg(result, rgb))

    def _publish_geometry(self, result: FrameResult) -> None:
        """Publish the target's box and axes markers and, when subscribed, its points."""
        geometry = result.geometry
        extent = geometry.extent if geometry is not None else None
        if (extent is not None or self._extent_shown) and self.wanted("marker"):
            shown = [self._publish("marker", marker)
                     for marker in messages.extent_markers(result.header, extent)]
            self._extent_shown = all(shown) and extent is not None
        else:
            self._extent_shown = False
        if geometry is not None and len(geometry.points):
            self._publish("target_cloud", lambda: messages.target_cloud_msg(
                result.header, geometry.points))
