"""A running node under a thousand random and malformed messages on every input and the service.

Afterwards, a valid query and frame: the node is alive and answers as ``Segmenter.predict``.
"""

import random
import string
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("refseg_msgs.msg")

from tests.ros_graph import WaitTimeout, make_picture, wait_active, wait_until  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MESSAGES_PER_TOPIC = 1000
SERVICE_CALLS = 1000
ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1", "8UC3",
             "yuv422", "", "RGB8", "bgr8\x00", "jpeg"]


def random_text(rng: random.Random) -> str:
    """Return a query: command words, noise, unicode, control characters, empty or very long."""
    kind = rng.randrange(6)
    if kind == 0:
        return ""
    if kind == 1:
        return " ".join(rng.choice(["pick", "up", "the", "it", "red", "cup", "please", "and",
                                    "put", "on", "left", "grab", "that", ","])
                        for _ in range(rng.randrange(1, 30)))
    if kind == 2:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 80)))
    if kind == 3:
        return "the jar " * rng.randrange(50, 2000)
    if kind == 4:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 300)))
    return rng.choice(["pick it up", "grab that", "   ", "\n\t", "segment of brown hills",
                       "the red cup on the left"])


def random_image(rng: random.Random):
    """Return an Image whose fields disagree in every way a buggy driver could make them."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.encoding = rng.choice(ENCODINGS)
    kind = rng.randrange(5)
    if kind == 0:  # claims a huge frame, carries little
        msg.height, msg.width = rng.randrange(2**20, 2**32), rng.randrange(2**20, 2**32)
    else:
        msg.height, msg.width = rng.randrange(0, 48), rng.randrange(0, 48)
    pixel = rng.choice([1, 2, 3, 4])
    msg.step = max(0, msg.width * pixel + rng.randrange(-3, 9)) if kind != 1 else rng.randrange(
        0, 2**32)
    size = msg.step * msg.height if kind == 2 else rng.randrange(0, 4096)
    msg.data = rng.randbytes(min(size, 200_000))
    msg.is_bigendian = rng.randrange(2)
    msg.header.frame_id = rng.choice(["", "camera", "\u00e9" * 40])
    msg.header.stamp.sec, msg.header.stamp.nanosec = rng.randrange(2**31), rng.randrange(10**9)
    return msg


def random_camera_info(rng: random.Random):
    """Return a CameraInfo with zero, NaN, infinite or negative intrinsics and wrong sizes."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.width, msg.height = rng.randrange(0, 5000), rng.randrange(0, 5000)
    values = [0.0, float("nan"), float("inf"), -1.0, 1e-30, 1e30, 500.0, 320.0]
    msg.k = [rng.choice(values) for _ in range(9)]
    msg.d = [rng.uniform(-1, 1) for _ in range(rng.randrange(0, 9))]
    msg.distortion_model = rng.choice(["", "plumb_bob", "x" * 100])
    return msg


def test_node_survives_malformed_input_and_still_answers_right(start_node, graph, checkpoints,
                                                                tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String

    from refseg_model import Segmenter
    from refseg_msgs.msg import Segmentation
    from refseg_msgs.srv import Segment
    from refseg_node.ros_io.image_conversion import image_to_array, rgb8_msg

    checkpoint = checkpoints["random"]
    node = start_node({"checkpoint": str(checkpoint), "device": "cpu"}, name="fuzzed")
    wait_active(graph, node)
    results = graph.collect(Segmentation, "/refseg/segmentation")
    query_pub = graph.publisher(String, "/refseg/query")
    image_pub = graph.publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    depth_pub = graph.publisher(Image, "/camera/depth/image_raw", qos_profile_sensor_data)
    info_pub = graph.publisher(CameraInfo, "/camera/camera_info", qos_profile_sensor_data)

    rng = random.Random(1234)
    valid_small = rgb8_msg(make_picture(24, 32, seed=5))
    for i in range(MESSAGES_PER_TOPIC):
        query_pub.publish(String(data=random_text(rng)))
        image_pub.publish(random_image(rng) if i % 10 else valid_small)
        depth_pub.publish(random_image(rng))
        info_pub.publish(random_camera_info(rng))
        if i % 50 == 0:
            node.check_alive()
            time.sleep(0.01)  # let the node's callbacks run too

    client = graph.node.create_client(Segment, "/refseg/segment")
    wait_until(lambda: node.check_alive() or client.service_is_ready(), 60, "the segment service")
    pending, answered = [], []
    for i in range(SERVICE_CALLS):
        request = Segment.Request()
        request.command = random_text(rng)
        request.image = random_image(rng) if i % 3 else Image()
        pending.append(client.call_async(request))
        # At most 8 calls in flight: a service client keeps the last 10 responses (the rmw
        # services default), so more in flight on a slow machine can lose answers in the client.
        while sum(not f.done() for f in pending) >= 8:
            node.check_alive()
            time.sleep(0.002)
    wait_until(lambda: node.check_alive() or all(f.done() for f in pending), 180,
               "answers to every service call")
    answered = [f.result() for f in pending]
    graph.node.destroy_client(client)
    assert len(answered) == SERVICE_CALLS
    for response in answered:
        assert response.success or response.message  # a refusal always says why
    node.check_alive()

    # A valid query and frame: the answer is what Segmenter.predict gives here.
    picture = make_picture(120, 160, seed=9)
    query_pub.publish(String(data="pick up the red cup on the left"))
    frame = rgb8_msg(picture)
    frame.header.frame_id = "camera"
    deadline = time.monotonic() + 90
    answer = None
    while answer is None and time.monotonic() < deadline:
        frame.header.stamp.sec, frame.header.stamp.nanosec = 7, rng.randrange(10**9)
        stamp = (frame.header.stamp.sec, frame.header.stamp.nanosec)
        image_pub.publish(frame)
        try:
            answer = results.wait_for(
                lambda m, s=stamp: (m.header.stamp.sec, m.header.stamp.nanosec) == s
                and m.expression == "the red cup on the left", timeout=3, what="the answer")
        except WaitTimeout:
            node.check_alive()
    assert answer is not None, "no answer to a valid query after the fuzzing"
    expected = Segmenter.from_checkpoint(checkpoint, device="cpu").predict(
        picture, "the red cup on the left")
    got = image_to_array(answer.mask) > 0
    assert got.shape == expected.mask.shape
    assert np.mean(got == expected.mask) > 0.999
    assert answer.found == expected.found and answer.command == "pick up the red cup on the left"

    request = Segment.Request(command="the red cup on the left", image=frame)
    response = graph.call(Segment, "/refseg/segment", request)
    assert response.success, response.message
    assert np.mean((image_to_array(response.result.mask) > 0) == expected.mask) > 0.999
    node.check_alive()
    assert "Traceback" not in node.log()
