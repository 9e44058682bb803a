"""The refseg node in its own process, driven over a real rclpy graph from this process.

One node for the whole module, started with ``config/refseg.params.yaml`` and a tiny random
checkpoint. Answers are checked against ``Segmenter.predict`` run here on the same image and
checkpoint, so they do not depend on the quality of any trained model.
"""

import itertools
import time

import numpy as np
import pytest
import yaml

from tests.ros_graph import (
    DEADLINE,
    REPO,
    WaitTimeout,
    make_picture,
    publish_acked,
    wait_until,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PARAMS_FILE = REPO / "config" / "refseg.params.yaml"
STAMPS = itertools.count(1000)


@pytest.fixture(scope="module")
def picture():
    return make_picture(480, 640, seed=1)


@pytest.fixture(scope="module")
def segmenter(checkpoints):
    from refseg_model import Segmenter

    return Segmenter.from_checkpoint(checkpoints["random"], device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def threshold(segmenter, picture):
    """Return a threshold that splits the random model's response map in half (a real mask)."""
    probs = segmenter.predict(picture, "the red cup on the left").probs
    return float(np.round(np.median(probs), 4))


@pytest.fixture(scope="module")
def node(start_node, graph, checkpoints, threshold):
    from tests.ros_graph import wait_active

    # Reliable image QoS: best-effort 640x480 frames are mostly dropped by Fast DDS on one host.
    proc = start_node({"checkpoint": checkpoints["random"], "threshold": threshold,
                       "device": "cpu", "log_period": 0.0, "image_qos": "reliable",
                       "precision": "fp32"},  # the same numeric path as the test's Segmenter
                      params_file=PARAMS_FILE)
    wait_active(graph, proc)
    return proc


@pytest.fixture(scope="module")
def io(node, graph):
    """Return publishers into the node and collectors of every output topic."""
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from visualization_msgs.msg import Marker

    from refseg_msgs.msg import Segmentation

    class IO:
        segmentation = graph.collect(Segmentation, "/refseg/segmentation")
        mask = graph.collect(Image, "/refseg/mask")
        centroid = graph.collect(PointStamped, "/refseg/centroid")
        target_point = graph.collect(PointStamped, "/refseg/target_point")
        overlay = graph.collect(Image, "/refseg/overlay")
        marker = graph.collect(Marker, "/refseg/marker")
        query = graph.publisher(String, "/refseg/query")
        image = graph.publisher(Image, "/camera/image_raw")

    wait_until(lambda: all(c.subscription.get_publisher_count() for c in (
        IO.segmentation, IO.mask, IO.centroid, IO.overlay)), what="the node's publishers")
    return IO


def image_msg(rgb, encoding="rgb8"):
    from refseg_node.ros_io.image_conversion import array_to_image

    data = rgb if encoding == "rgb8" else np.ascontiguousarray(rgb[:, :, ::-1])
    msg = array_to_image(data, encoding)
    stamp = next(STAMPS)
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp, 123
    msg.header.frame_id = "test_optical_frame"
    return msg


def stamp_of(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def send_query(io, node, text):
    """Publish a query the node has received; return the log position to wait after."""
    from std_msgs.msg import String

    mark = len(node.log())
    publish_acked(io.query, String(data=text))
    return mark


def set_query(io, node, text, expression=None, rgb=None):
    """Publish query ``text``; return the first Segmentation of a later frame that used it."""
    from std_msgs.msg import String

    expression = text if expression is None else expression
    rgb = make_picture(60, 80, seed=9) if rgb is None else rgb
    end = time.monotonic() + DEADLINE
    for attempt in itertools.count():
        if attempt % 5 == 0:  # the query again every 5 frames, as a user would repeat it
            publish_acked(io.query, String(data=text))
        seg, _ = segment_frame(io, rgb)
        if seg.command == text and seg.expression == expression:
            return seg
        if time.monotonic() > end:
            break
    pytest.fail(f"the node never used the query {text!r}:\n{node.log()[-2000:]}")


def mask_of(msg):
    from refseg_node.ros_io.image_conversion import image_to_array

    assert msg.encoding == "mono8"
    return image_to_array(msg) == 255


def segment_frame(io, rgb, encoding="rgb8"):
    """Publish one frame (repeating until the node answers) and return its Segmentation."""
    last = None
    for _ in range(5):
        msg = image_msg(rgb, encoding)
        publish_acked(io.image, msg)
        try:
            return io.segmentation.wait_for(lambda m, s=stamp_of(msg): stamp_of(m) == s,
                                            timeout=30.0), msg
        except WaitTimeout as err:  # a best-effort frame may be lost: resend
            last = err
    raise last


def assert_matches_model(seg, segmenter, rgb, expression, threshold):
    from refseg_node.perception.targets import primary_target

    expected = segmenter.predict(rgb, expression, threshold=threshold)
    mask = mask_of(seg.mask)
    assert mask.shape == rgb.shape[:2]
    disagree = np.mean(mask != expected.mask)
    assert disagree < 0.002, f"{disagree:.2%} of pixels differ from Segmenter.predict"
    target = primary_target(expected.mask, expected.probs)
    assert seg.found == target.found
    if target.found:
        assert seg.area == pytest.approx(target.area, rel=0.02, abs=5)
        assert seg.centroid.x == pytest.approx(target.centroid[0], abs=2.0)
        assert seg.centroid.y == pytest.approx(target.centroid[1], abs=2.0)
        assert seg.num_regions == pytest.approx(target.num_regions, abs=2)
        assert seg.mask_area == pytest.approx(int(expected.mask.sum()), rel=0.01, abs=5)
        assert 0.0 < seg.score <= 1.0


def test_query_before_any_frame_is_served_by_the_next_frame(io, node, segmenter, picture,
                                                            threshold):
    mark = send_query(io, node, "pick up the red cup on the left")
    node.wait_log("-> expression 'the red cup on the left'", after=mark)  # before any frame
    seg, sent = segment_frame(io, picture)
    assert seg.command == "pick up the red cup on the left"
    assert seg.expression == "the red cup on the left"
    assert seg.header.frame_id == "test_optical_frame" and stamp_of(seg) == stamp_of(sent)
    assert seg.threshold == pytest.approx(threshold)
    assert list(seg.unknown_words) == [] and seg.inference_time > 0
    assert seg.found and not seg.has_3d
    assert_matches_model(seg, segmenter, picture, "the red cup on the left", threshold)
    x, y, w, h = seg.bbox.x_offset, seg.bbox.y_offset, seg.bbox.width, seg.bbox.height
    assert 0 <= x <= seg.centroid.x <= x + w and 0 <= y <= seg.centroid.y <= y + h
    assert w * h >= seg.area


def test_every_output_topic_carries_the_source_header(io, node, picture):
    seg, sent = segment_frame(io, picture, "bgr8")

    def same(m):
        return stamp_of(m) == stamp_of(sent)

    mask = io.mask.wait_for(same)
    assert (mask.width, mask.height, mask.header.frame_id) == (640, 480, "test_optical_frame")
    np.testing.assert_array_equal(mask_of(mask), mask_of(seg.mask))
    centroid = io.centroid.wait_for(same)
    assert (centroid.point.x, centroid.point.y, centroid.point.z) == pytest.approx(
        (seg.centroid.x, seg.centroid.y, 0.0))
    overlay = io.overlay.wait_for(same)
    assert (overlay.encoding, overlay.width, overlay.height) == ("bgr8", 640, 480)
    from refseg_node.ros_io.image_conversion import image_to_array

    drawn = image_to_array(overlay)
    assert not np.array_equal(drawn, picture[:, :, ::-1])      # tinted, contour, text
    assert not seg.has_3d and "depth" in seg.no_3d_reason      # no depth: no 3D point


def test_bgr8_frames_give_the_same_answer_as_rgb8(io, picture):
    rgb_seg, _ = segment_frame(io, picture, "rgb8")
    bgr_seg, _ = segment_frame(io, picture, "bgr8")
    assert np.mean(mask_of(rgb_seg.mask) != mask_of(bgr_seg.mask)) < 0.002


def test_service_with_an_image_and_with_the_latest_frame(graph, segmenter, picture, threshold):
    from refseg_msgs.srv import Segment

    small = make_picture(120, 160, seed=5)
    request = Segment.Request(command="could you grab the blue bottle next to the box please",
                              image=image_msg(small))
    response = graph.call(Segment, "/refseg/segment", request)
    assert response.success, response.message
    result = response.result
    assert result.expression == "the blue bottle next to the box"
    assert (result.mask.width, result.mask.height) == (160, 120)
    assert stamp_of(result) == stamp_of(request.image)
    assert_matches_model(result, segmenter, small, "the blue bottle next to the box", threshold)

    latest = graph.call(Segment, "/refseg/segment", Segment.Request(command="the green ball"))
    assert latest.success, latest.message
    assert (latest.result.mask.width, latest.result.mask.height) == (640, 480)
    assert_matches_model(latest.result, segmenter, picture, "the green ball", threshold)


def test_service_reports_bad_requests(graph):
    from sensor_msgs.msg import Image

    from refseg_msgs.srv import Segment

    bad = Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32))
    response = graph.call(Segment, "/refseg/segment", Segment.Request(command="sky", image=bad))
    assert not response.success and "unsupported encoding 'yuv422'" in response.message
    empty = graph.call(Segment, "/refseg/segment", Segment.Request(command="  "))
    assert not empty.success and "names no object" in empty.message


def test_the_active_line_names_the_threshold_in_use(node, threshold):
    # The threshold parameter overrides the checkpoint's (0.5 for this one): the log says so.
    line = next(text for text in node.log().splitlines() if "active:" in text)
    assert f"threshold {threshold:g} (the threshold parameter; the checkpoint's 0.5)" in line


def test_parameters_match_the_params_file_and_the_specs(graph, node, checkpoints, threshold):
    from rcl_interfaces.srv import DescribeParameters, ListParameters

    from refseg_node.parameters import PARAMETERS, SPECS

    declared = graph.call(ListParameters, "/refseg/list_parameters",
                          ListParameters.Request()).result.names
    names = [p.name for p in PARAMETERS]
    assert set(names) <= set(declared)
    file_values = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    assert set(file_values) <= set(names), "the params file sets undeclared parameters"
    got = graph.get_parameters(names)
    overridden = {"checkpoint": str(checkpoints["random"]), "threshold": threshold,
                  "device": "cpu", "log_period": 0.0, "image_qos": "reliable", "precision": "fp32"}
    for name in names:
        expected = overridden.get(name, file_values.get(name, SPECS[name].default))
        assert got[name] == pytest.approx(expected) if isinstance(expected, float) else (
            got[name] == expected), name
    described = graph.call(DescribeParameters, "/refseg/describe_parameters",
                           DescribeParameters.Request(names=["threshold", "autostart",
                                                             "max_query_length"])).descriptors
    threshold_range = described[0].floating_point_range[0]
    assert (threshold_range.from_value, threshold_range.to_value) == (-1.0, 1.0)
    assert described[1].read_only and not described[0].read_only
    assert described[2].integer_range[0].from_value == 1


def set_parameter(graph, name, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return graph.call(SetParameters, "/refseg/set_parameters", request).results[0]


def test_invalid_parameter_values_are_refused_with_a_reason(graph):
    result = set_parameter(graph, "threshold", 1.5)
    assert not result.successful and "out of range" in result.reason  # the descriptor's range
    result = set_parameter(graph, "mode", "sometimes")
    assert not result.successful and "continuous" in result.reason
    result = set_parameter(graph, "image_qos", "best_effort")
    assert not result.successful
    result = set_parameter(graph, "marker_scale", 0.0)
    assert not result.successful and "> 0" in result.reason
    result = set_parameter(graph, "autostart", False)
    assert not result.successful and "read-only" in result.reason


def test_mode_once_segments_only_the_next_frame_after_a_query(io, node, graph, picture):
    from refseg_msgs.srv import Segment

    set_query(io, node, "sky")
    mark = send_query(io, node, "")
    node.wait_log("query cleared", after=mark)
    assert set_parameter(graph, "mode", "once").successful
    try:
        mark = send_query(io, node, "the jar on the table")
        node.wait_log("query 'the jar on the table' -> expression", after=mark)
        first, _ = segment_frame(io, picture)
        assert first.expression == "the jar on the table"
        later = [image_msg(picture) for _ in range(3)]
        for msg in later:
            publish_acked(io.image, msg)
        # The node has the frames; its input callbacks run one at a time in arrival order, so
        # they are stored before the next query, whatever the service call does meanwhile.
        graph.call(Segment, "/refseg/segment", Segment.Request(command="sky"))
        mark = send_query(io, node, "the green ball")
        node.wait_log("query 'the green ball' -> expression", after=mark)
        again, _ = segment_frame(io, picture)
        assert again.expression == "the green ball"
        stamps = {stamp_of(m) for m in later}
        assert io.segmentation.find(lambda m: stamp_of(m) in stamps) == []
    finally:
        assert set_parameter(graph, "mode", "continuous").successful


def test_empty_query_clears_and_pronoun_keeps_the_object(io, node, picture):
    mark = send_query(io, node, "")
    node.wait_log("query cleared", after=mark)
    mark = send_query(io, node, "pick it up")
    node.wait_log("names no object", after=mark)
    set_query(io, node, "the two men on the right")
    seg = set_query(io, node, "now pick them up", "the two men on the right", picture)
    assert seg.command == "now pick them up" and seg.expression == "the two men on the right"


def test_not_found_is_an_answer_with_a_reason_and_no_target_point(io, node, graph, segmenter,
                                                                   picture, threshold):
    peak = float(segmenter.predict(picture, "the jar").probs.max())
    assert set_parameter(graph, "threshold", min(1.0, round(peak + 0.01, 4))).successful
    try:
        seg = set_query(io, node, "pick up the jar", "the jar", picture)
        assert not seg.found and seg.area == 0 and not mask_of(seg.mask).any()
        assert not seg.has_3d
        assert seg.no_3d_reason.startswith("not found: nothing in the picture matches 'the jar' "
                                           "(no pixel reached the threshold")
        assert io.target_point.find(lambda m: stamp_of(m) == stamp_of(seg)) == []
        assert io.centroid.find(lambda m: stamp_of(m) == stamp_of(seg)) == []
    finally:
        assert set_parameter(graph, "threshold", threshold).successful


def test_non_english_and_unknown_words(io, node, segmenter, picture, threshold):
    seg = set_query(io, node, "ramasse la tasse rouge", rgb=picture)
    assert not seg.found and seg.area == 0 and seg.num_regions == 0
    assert sorted(seg.unknown_words) == ["la", "ramasse", "rouge", "tasse"]
    assert not mask_of(seg.mask).any()
    node.wait_log("are in the model's vocabulary")
    seg = set_query(io, node, "the zorblax cup on the left", rgb=picture)
    assert list(seg.unknown_words) == ["zorblax"]
    assert_matches_model(seg, segmenter, picture, "the zorblax cup on the left", threshold)


def test_over_long_query_is_cut(io, node):
    from refseg_node.language.command_parser import parse_command

    text = "pick up the " + " ".join(["red"] * 2000) + " cup"
    expected = parse_command(text, 200).expression
    mark = len(node.log())
    seg = set_query(io, node, text, expected)
    node.wait_log("characters cut to 200", after=mark)
    assert len(seg.expression) <= 200 and seg.expression.startswith("the red red")


@pytest.mark.parametrize("make_bad,reason", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported encoding 'yuv422'"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-7]), "needs"),
    (lambda m: setattr(m, "step", m.step - 1), "smaller than width"),
    (lambda m: (setattr(m, "height", 0), setattr(m, "data", b"")), "empty image"),
    (lambda m: (setattr(m, "width", 100_000), setattr(m, "height", 100_000)), "too large"),
    (lambda m: setattr(m, "encoding", "32FC1"), "not a colour image"),
])
def test_bad_images_are_skipped_with_a_reason_and_the_node_stays_right(
        io, node, segmenter, picture, threshold, make_bad, reason):
    set_query(io, node, "the red cup on the left")
    bad = image_msg(make_picture(60, 80, seed=3))
    make_bad(bad)
    mark = len(node.log())
    io.image.publish(bad)
    node.wait_log(reason, after=mark)
    seg, _ = segment_frame(io, picture)
    assert io.segmentation.find(lambda m: stamp_of(m) == stamp_of(bad)) == []
    assert_matches_model(seg, segmenter, picture, "the red cup on the left", threshold)


def test_floods_of_queries_and_images_leave_it_alive_and_right(io, node, graph, segmenter,
                                                               picture, threshold):
    from std_msgs.msg import String

    small = make_picture(120, 160, seed=4)
    flood = [image_msg(small) for _ in range(60)]
    for i, msg in enumerate(flood):
        io.query.publish(String(data=["the green ball", "sky", "", "x" * 3000][i % 4]))
        io.image.publish(msg)
    seg = set_query(io, node, "pick up the red cup on the left", "the red cup on the left",
                    picture)
    node.check_alive()
    assert seg.expression == "the red cup on the left"
    assert_matches_model(seg, segmenter, picture, "the red cup on the left", threshold)
    processed = {stamp_of(m) for m in io.segmentation.messages}
    assert len(processed & {stamp_of(m) for m in flood}) < len(flood)  # latest frame wins
