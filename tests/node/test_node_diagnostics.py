"""/diagnostics of a running node: its figures, WARN without frames, OK while inactive.

The node runs as its own process with the ``everything`` checkpoint (the whole image is the
target) and a camera stream of colour, depth and CameraInfo published from the test's peer.
"""

import time

import numpy as np
import pytest

from tests.ros_graph import make_picture, publish_acked, wait_active

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H = 160, 120
# Camera topics of this module only: the test's publishers outlive it (one peer per session),
# and a reliable publisher left on the default topics would change what later nodes subscribe.
TOPICS = {"image": "/diag_camera/image_raw", "depth": "/diag_camera/depth",
          "camera_info": "/diag_camera/camera_info"}


def status_of(msg):
    return next((s for s in msg.status if s.name == "refseg: segmentation"), None)


def values(status):
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture(scope="module")
def diag(start_node, graph, checkpoints):
    from diagnostic_msgs.msg import DiagnosticArray

    collector = graph.collect(DiagnosticArray, "/diagnostics")
    node = start_node({"checkpoint": checkpoints["everything"], "device": "cpu",
                       "image_qos": "reliable", "frame_timeout": 2.0, "log_period": 0.0},
                      name="diag_node",
                      extra_args=[a for name, topic in TOPICS.items()
                                  for a in ("-r", f"{name}:={topic}")])
    wait_active(graph, node)
    return node, collector


def wait_status(collector, predicate, timeout=60.0):
    msg = collector.wait_for(lambda m: (s := status_of(m)) is not None and predicate(s), timeout)
    return status_of(msg)


def test_warn_when_no_frame_arrives_within_frame_timeout(diag):
    from diagnostic_msgs.msg import DiagnosticStatus

    _, collector = diag
    status = wait_status(collector, lambda s: s.level == DiagnosticStatus.WARN)
    assert "no camera frame" in status.message and "frame_timeout 2 s" in status.message
    assert values(status)["state"] == "active"


def test_figures_while_segmenting_a_camera_stream(diag, graph):
    from diagnostic_msgs.msg import DiagnosticStatus
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String

    from refseg_node.ros_io.image_conversion import depth16_msg, rgb8_msg

    node, collector = diag
    create = graph.node.create_publisher
    image = create(Image, TOPICS["image"], 10)
    depth_pub = create(Image, TOPICS["depth"], 10)
    info_pub = create(CameraInfo, TOPICS["camera_info"], 10)
    query = create(String, "/refseg/query", 10)
    publish_acked(query, String(data="the green ball"))
    info = CameraInfo(width=W, height=H, k=[200.0, 0.0, 80.0, 0.0, 200.0, 60.0, 0.0, 0.0, 1.0])
    depth = depth16_msg(np.full((H, W), 1.0, np.float32))
    start = time.monotonic()
    status = None
    for sec in range(1, 600):                    # 10 Hz, as a camera
        for msg in (depth, info, rgb8_msg(make_picture(H, W, seed=sec % 5))):
            msg.header.stamp.sec = sec
            (depth_pub if msg is depth else info_pub if msg is info else image).publish(msg)
        time.sleep(0.1)
        seen = collector.find(lambda m: (s := status_of(m)) is not None
                              and s.message == "segmenting"
                              and values(s)["3D pairing share"] != "n/a")
        if seen and time.monotonic() - start > 3.0:
            status = status_of(seen[-1])
            break
    for publisher in (image, depth_pub, info_pub, query):
        graph.node.destroy_publisher(publisher)
    assert status is not None, node.log()[-3000:]
    v = values(status)
    assert status.level == DiagnosticStatus.OK and status.hardware_id == "cpu"
    assert float(v["input frame rate (Hz)"]) > 0 and float(v["answered rate (Hz)"]) > 0
    assert float(v["model latency p50 (ms)"]) > 0
    assert float(v["model latency p95 (ms)"]) >= float(v["model latency p50 (ms)"])
    assert 0.0 <= float(v["tracked share"]) <= 1.0
    assert float(v["3D pairing share"]) == 1.0
    assert v["device"] == "cpu" and v["numeric path"] != "n/a"
    assert int(v["dropped frames"]) >= 0


def test_inactive_is_reported_as_such(diag, graph):
    from diagnostic_msgs.msg import DiagnosticStatus
    from lifecycle_msgs.msg import Transition

    _, collector = diag
    assert graph.change_state(Transition.TRANSITION_DEACTIVATE)
    status = wait_status(collector, lambda s: values(s)["state"] == "inactive")
    assert status.level == DiagnosticStatus.OK and status.message.startswith("inactive")
