"""refseg_msgs round-trip between two separate processes over real DDS (Fast DDS)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from refseg_msgs.msg import Segmentation  # noqa: E402
from refseg_msgs.srv import Segment  # noqa: E402
from tests.harness import isolated_ros_env  # noqa: E402

PEER = Path(__file__).parent / 'peers' / 'msgs_peer.py'
pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    """Start the peer in its own process and an rclpy context in this one, on a private domain."""
    env = isolated_ros_env(tmp_path_factory.mktemp('roslog'))
    peer = subprocess.Popen([sys.executable, str(PEER)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert peer.stdout.readline().strip() == 'READY', 'peer did not start'
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    node = Node('msgs_test', context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    peer.terminate()
    peer.wait(timeout=10)


def spin_until(executor, predicate, timeout=20.0):
    """Spin until ``predicate()`` is true or ``timeout`` seconds pass; return the predicate."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def make_mask(width=8, height=4):
    """Return a mono8 Image with the left half at 255."""
    img = Image(width=width, height=height, encoding='mono8', step=width)
    img.header.frame_id = 'camera_color_optical_frame'
    img.data = bytes(([255] * (width // 2) + [0] * (width - width // 2)) * height)
    return img


def test_segmentation_message_round_trip(graph):
    node, executor = graph
    received = []
    node.create_subscription(Segmentation, 'echo_out', received.append, 10)
    pub = node.create_publisher(Segmentation, 'echo_in', 10)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0)

    msg = Segmentation(command='pick up the jar on the table', expression='the jar on the table',
                       found=True, score=0.25, area=16, has_3d=True, unknown_words=['zorb'])
    msg.header.frame_id = 'camera_color_optical_frame'
    msg.header.stamp.sec = 42
    msg.mask = make_mask()
    msg.centroid.x, msg.centroid.y = 1.5, 2.0
    msg.bbox.x_offset, msg.bbox.width = 0, 4
    msg.target_point.point.z = 0.8
    assert spin_until(executor, lambda: (pub.publish(msg), bool(received))[1])

    got = received[0]
    assert got.score == pytest.approx(0.5)  # doubled by the peer: it really went through it
    assert got.command == msg.command and got.expression == msg.expression
    assert got.header.stamp.sec == 42 and got.header.frame_id == 'camera_color_optical_frame'
    assert bytes(got.mask.data) == bytes(msg.mask.data)
    assert (got.centroid.x, got.centroid.y, got.bbox.width) == (1.5, 2.0, 4)
    assert got.has_3d and got.target_point.point.z == pytest.approx(0.8)
    assert list(got.unknown_words) == ['zorb']


def test_segment_service_round_trip(graph):
    node, executor = graph
    client = node.create_client(Segment, 'segment_peer')
    assert spin_until(executor, client.service_is_ready)

    future = client.call_async(Segment.Request(command='the red cup', image=make_mask()))
    assert spin_until(executor, future.done)
    response = future.result()
    assert response.success and response.message == 'the red cup|8x4'
    assert response.result.command == 'the red cup' and response.result.area == 16

    future = client.call_async(Segment.Request(command='no image'))
    assert spin_until(executor, future.done)
    assert not future.result().success and future.result().message == 'no image|0x0'
