"""Lifecycle transitions over the lifecycle services, and the 3D target point from depth.

The node starts with ``autostart:=false`` and the ``everything`` checkpoint (a real tiny model
whose classifier outputs +6 everywhere), so the target is the whole image and the 3D point
has a hand-computable answer on a hand-made depth image.
"""

import numpy as np
import pytest

from tests.ros_graph import WaitTimeout, make_picture, publish_acked, rgbd_io, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H = 160, 120
FX, FY, CX, CY = 200.0, 180.0, 70.0, 50.0
_stamp = [5000]


@pytest.fixture(scope="module")
def node(start_node, checkpoints):
    return start_node({"checkpoint": checkpoints["everything"], "autostart": False,
                       "device": "cpu", "image_qos": "reliable", "log_period": 0.0,
                       "depth_sync_tolerance": 0.01})


def get_state(graph):
    # Graph.lifecycle_state sends the request again every 5 s: the first answer of a new
    # client can be lost while Fast DDS matches the reply direction (seen in full make test
    # runs: a single request went unanswered for 60 s).
    return graph.lifecycle_state("refseg", 60.0)


def state_or_none(graph):
    try:
        return get_state(graph)
    except WaitTimeout:
        return None


def change_state(graph, transition_id):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    request = ChangeState.Request(transition=Transition(id=transition_id))
    return graph.call(ChangeState, "/refseg/change_state", request, timeout=120.0).success


def set_parameter(graph, name, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return graph.call(SetParameters, "/refseg/set_parameters", request).results[0].successful


@pytest.fixture(scope="module")
def io(graph, node):
    from geometry_msgs.msg import PointStamped
    from visualization_msgs.msg import Marker

    from refseg_msgs.msg import Segmentation

    wait_until(lambda: state_or_none(graph) == "unconfigured", 180.0, "the node to come up")

    return rgbd_io(graph, segmentation=(Segmentation, "/refseg/segmentation"),
                   target_point=(PointStamped, "/refseg/target_point"),
                   marker=(Marker, "/refseg/marker"))


def stamped(msg, sec):
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 0
    msg.header.frame_id = "camera_color_optical_frame"
    return msg


def camera_info(k=None):
    from sensor_msgs.msg import CameraInfo

    return CameraInfo(width=W, height=H,
                      k=k if k is not None else [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0])


def frame(io, depth_msg=None, info=None, depth_offset=0, query=None):
    """Publish (depth, camera_info, image) with one stamp; return the node's Segmentation."""
    from std_msgs.msg import String

    from refseg_node.ros_io.image_conversion import rgb8_msg

    for _ in range(10):
        _stamp[0] += 1
        sec = _stamp[0]
        if query is not None:
            publish_acked(io.query, String(data=query))
        if depth_msg is not None:
            publish_acked(io.depth, stamped(depth_msg, sec + depth_offset))
        publish_acked(io.info, stamped(info or camera_info(), sec))
        publish_acked(io.image, stamped(rgb8_msg(make_picture(H, W, seed=sec % 7)), sec))
        try:
            return io.segmentation.wait_for(lambda m, s=sec: m.header.stamp.sec == s, 15.0)
        except WaitTimeout:
            continue  # query or depth not there yet: next frame
    pytest.fail("no segmentation for 10 frames")


def test_unconfigured_then_configure_and_activate(graph, node, io):
    from lifecycle_msgs.msg import Transition

    from refseg_msgs.srv import Segment

    assert get_state(graph) == "unconfigured"
    assert change_state(graph, Transition.TRANSITION_CONFIGURE)
    assert get_state(graph) == "inactive"
    response = graph.call(Segment, "/refseg/segment", Segment.Request(command="sky"))
    assert not response.success and "not active" in response.message
    assert change_state(graph, Transition.TRANSITION_ACTIVATE)
    assert get_state(graph) == "active"
    response = graph.call(Segment, "/refseg/segment", Segment.Request(command="sky"))
    assert not response.success and "no image" in response.message


def test_invalid_transitions_are_refused_and_the_node_keeps_working(graph, node, io):
    # Jazzy's rclpy lets rcl's error for an invalid transition escape spin() and end the
    # process; Kilted answers success=False. The node answers success=False on both.
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    assert get_state(graph) == "active"
    mark = len(node.log())
    assert not change_state(graph, Transition.TRANSITION_ACTIVATE)
    assert not change_state(graph, Transition.TRANSITION_CONFIGURE)
    by_label = ChangeState.Request(transition=Transition(label="activate"))
    assert not graph.call(ChangeState, "/refseg/change_state", by_label, timeout=120.0).success
    node.wait_log("lifecycle transition 'activate' refused: not available in state 'active'",
                  after=mark)
    node.check_alive()
    assert get_state(graph) == "active"
    assert frame(io, query="the green ball").found


def test_every_found_answer_has_its_point_when_depth_comes_late(io):
    # A camera stream whose depth frame reaches the node 30-80 ms after its colour frame (the
    # order on the wire is not fixed): the answer waits for it (depth_wait) and has its point.
    import random
    import time

    from std_msgs.msg import String

    from refseg_node.ros_io.image_conversion import depth16_msg, rgb8_msg

    publish_acked(io.query, String(data="the green ball"))
    rng = random.Random(0)
    depth_m = np.full((H, W), 1.25, np.float32)
    first = _stamp[0] + 1
    for _ in range(40):                          # 10 Hz, as a camera
        _stamp[0] += 1
        sec = _stamp[0]
        io.info.publish(stamped(camera_info(), sec))
        io.image.publish(stamped(rgb8_msg(make_picture(H, W, seed=sec % 7)), sec))
        delay = rng.uniform(0.03, 0.08)
        time.sleep(delay)
        io.depth.publish(stamped(depth16_msg(depth_m), sec))
        time.sleep(0.1 - delay)
    last = _stamp[0]
    io.segmentation.wait_for(lambda m: m.header.stamp.sec >= last - 5, 60.0)
    time.sleep(1.0)                              # answers of the last frames
    answers = io.segmentation.find(lambda m: first <= m.header.stamp.sec <= last)
    found = [m for m in answers if m.found]
    assert len(found) >= 10, f"{len(found)} answers"
    missing = [(m.header.stamp.sec, m.tracked, m.no_3d_reason) for m in found if not m.has_3d]
    assert not missing, missing
    assert all(m.target_point.point.z == pytest.approx(1.25, abs=0.01) for m in found)


def test_target_point_from_16uc1_millimetres(io):
    from refseg_node.ros_io.image_conversion import array_to_image

    mm = np.full((H, W), 1250, np.uint16)
    mm[:30, :] = 0                       # no depth (25 % of the pixels)
    mm[30:40, :] = 9000                  # far background (8 %): the median ignores it
    seg = frame(io, array_to_image(mm, "16UC1"), query="pick up the red cup on the left")
    assert seg.found and seg.area == W * H and seg.has_3d
    cx, cy = (W - 1) / 2, (H - 1) / 2
    expected = ((cx - CX) * 1.25 / FX, (cy - CY) * 1.25 / FY, 1.25)
    p = seg.target_point.point
    assert (p.x, p.y, p.z) == pytest.approx(expected, abs=1e-6)
    assert seg.target_point.header.frame_id == "camera_color_optical_frame"
    point = io.target_point.wait_for(lambda m: m.header.stamp == seg.header.stamp)
    assert (point.point.x, point.point.y, point.point.z) == pytest.approx(expected, abs=1e-6)
    marker = io.marker.wait_for(lambda m: m.header.stamp == seg.header.stamp)
    assert marker.action == marker.ADD and marker.type == marker.SPHERE
    assert marker.pose.position.z == pytest.approx(1.25)


def test_target_point_from_32fc1_metres_with_nan(io):
    from refseg_node.ros_io.image_conversion import array_to_image

    m = np.full((H, W), 0.8, np.float32)
    m[::2, ::3] = np.nan
    m[:, :10] = np.inf
    seg = frame(io, array_to_image(m, "32FC1"))
    assert seg.has_3d
    p = seg.target_point.point
    assert p.z == pytest.approx(0.8, abs=1e-6)
    assert p.x == pytest.approx(((W - 1) / 2 - CX) * 0.8 / FX, abs=1e-6)


@pytest.mark.parametrize("case", ["all_nan", "stamp_mismatch", "uncalibrated", "wrong_size",
                                  "bad_encoding"])
def test_no_point_rather_than_a_wrong_one(io, node, case):
    from refseg_node.ros_io.image_conversion import array_to_image

    depth = array_to_image(np.full((H, W), 1.0, np.float32), "32FC1")
    kwargs = {}
    if case == "all_nan":
        depth = array_to_image(np.full((H, W), np.nan, np.float32), "32FC1")
    elif case == "stamp_mismatch":
        kwargs["depth_offset"] = 1          # 1 s apart, tolerance 0.01 s
    elif case == "uncalibrated":
        kwargs["info"] = camera_info(k=[0.0] * 9)
    elif case == "wrong_size":
        depth = array_to_image(np.full((H // 2, W // 2), 1.0, np.float32), "32FC1")
    elif case == "bad_encoding":
        depth = array_to_image(np.full((H, W, 3), 1, np.uint8), "rgb8")
    seg = frame(io, depth, **kwargs)
    assert seg.found and not seg.has_3d
    assert io.target_point.find(lambda m: m.header.stamp == seg.header.stamp) == []
    node.check_alive()


def test_deactivate_releases_and_reactivate_works(graph, node, io):
    from lifecycle_msgs.msg import Transition

    from refseg_msgs.srv import Segment

    mark = len(node.log())
    assert change_state(graph, Transition.TRANSITION_DEACTIVATE)
    assert get_state(graph) == "inactive"
    node.wait_log("model released", after=mark)
    response = graph.call(Segment, "/refseg/segment", Segment.Request(command="sky"))
    assert not response.success and "not active" in response.message
    assert change_state(graph, Transition.TRANSITION_ACTIVATE)
    seg = frame(io, query="the green ball")
    assert seg.found and seg.expression == "the green ball"


def test_cleanup_reconfigure_with_another_checkpoint(graph, node, io, checkpoints):
    from lifecycle_msgs.msg import Transition

    assert change_state(graph, Transition.TRANSITION_DEACTIVATE)
    assert change_state(graph, Transition.TRANSITION_CLEANUP)
    assert get_state(graph) == "unconfigured"
    assert set_parameter(graph, "checkpoint", "/nonexistent/model.pt")
    mark = len(node.log())
    assert not change_state(graph, Transition.TRANSITION_CONFIGURE)
    node.wait_log("checkpoint not found: /nonexistent/model.pt", after=mark)
    assert get_state(graph) == "unconfigured"
    assert set_parameter(graph, "checkpoint", str(checkpoints["nothing"]))
    assert change_state(graph, Transition.TRANSITION_CONFIGURE)
    assert change_state(graph, Transition.TRANSITION_ACTIVATE)
    seg = frame(io, query="the green ball")
    assert not seg.found and seg.area == 0 and not seg.has_3d


def test_shutdown_then_sigint_exits_cleanly(graph, node, io):
    from lifecycle_msgs.msg import Transition

    assert change_state(graph, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert get_state(graph) == "finalized"
    assert node.stop() == 0
    assert "Traceback" not in node.log()
