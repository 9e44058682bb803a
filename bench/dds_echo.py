"""The middleware floor: a node that answers every image with its header only.

``python -m bench.dds_echo`` subscribes to ``/refseg_bench/echo_in`` (sensor_msgs/Image,
reliable, keep last 2) and publishes an Image with the same header and no pixels on
``/refseg_bench/echo_out``. Timing an image there and back measures what rclpy + Fast DDS alone
cost to move a frame between two processes: the part of the node's overhead no node code can
remove (``bench/node_bench.py`` reports it next to the node's overhead).
"""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

IN_TOPIC, OUT_TOPIC = "/refseg_bench/echo_in", "/refseg_bench/echo_out"


def qos():
    """Return the QoS of both echo topics (that of the node bench's images)."""
    return QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)


def main() -> None:
    """Echo headers until interrupted."""
    rclpy.init()
    node = rclpy.create_node("refseg_bench_echo")
    publisher = node.create_publisher(Image, OUT_TOPIC, qos())

    def echo(msg: Image) -> None:
        publisher.publish(Image(header=msg.header))

    node.create_subscription(Image, IN_TOPIC, echo, qos())
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
