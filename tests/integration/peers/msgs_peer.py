"""Peer process for the DDS round-trip test: echoes Segmentation messages and serves Segment.

Run as ``python msgs_peer.py``; prints ``READY`` once its endpoints exist.
"""

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from refseg_msgs.msg import Segmentation
from refseg_msgs.srv import Segment


class Peer(Node):
    """Republish every Segmentation on ``echo_out`` with ``score`` doubled; answer Segment."""

    def __init__(self):
        super().__init__('msgs_peer')
        self.pub = self.create_publisher(Segmentation, 'echo_out', 10)
        self.create_subscription(Segmentation, 'echo_in', self.on_msg, 10)
        self.create_service(Segment, 'segment_peer', self.on_segment)

    def on_msg(self, msg):
        msg.score = msg.score * 2.0
        self.pub.publish(msg)

    def on_segment(self, request, response):
        response.success = request.image.width > 0
        response.message = f'{request.command}|{request.image.width}x{request.image.height}'
        response.result.command = request.command
        response.result.mask = request.image
        response.result.area = sum(request.image.data) // 255
        return response


def main():
    """Spin the peer until shut down."""
    rclpy.init()
    node = Peer()
    print('READY', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
