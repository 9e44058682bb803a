"""Two cameras, two nodes: refseg nodes in two namespaces answer independently (issue 25).

Four processes beside this test's peer node: a synthetic camera and a refseg node in ``/head``,
another pair in ``/wrist``. The node's topics and service are relative to it, and its camera
topics to its namespace, so each node reads its own camera (told apart by the frame size), takes
its own queries and publishes its own answers; the default names (``/refseg/...``) stay unused.
"""

import pytest

from tests.ros_graph import wait_active

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# namespace: (camera frame width, height, the query sent to that namespace's node)
CAMERAS = {"head": (320, 240, "pick up the red cup on the left"),
           "wrist": (160, 120, "the blue bottle next to the box")}


@pytest.fixture(scope="module")
def two_nodes(start_node, graph, checkpoints):
    from refseg_msgs.msg import Segmentation

    answers = {ns: graph.collect(Segmentation, f"/{ns}/refseg/segmentation") for ns in CAMERAS}
    for ns, (width, height, _) in CAMERAS.items():
        start_node({"scene": "demo", "qos": "reliable", "rate": 5.0, "width": width,
                    "height": height}, module="refseg_node.sim.synthetic_camera",
                   name=f"{ns}_camera", extra_args=["-r", f"__ns:=/{ns}"])
    nodes = {ns: start_node({"checkpoint": str(checkpoints["everything"]), "device": "cpu",
                             "image_qos": "reliable", "log_period": 0.0},
                            name=f"{ns}_refseg", extra_args=["-r", f"__ns:=/{ns}"])
             for ns in CAMERAS}
    for ns, node in nodes.items():
        wait_active(graph, node, node_name=f"{ns}/refseg")
    return answers


def test_each_node_answers_its_own_query_on_its_own_camera(graph, two_nodes):
    from std_msgs.msg import String

    for ns, (_, _, command) in CAMERAS.items():
        graph.publisher(String, f"/{ns}/refseg/query").publish(String(data=command))
    for ns, (width, height, command) in CAMERAS.items():
        seg = two_nodes[ns].wait_for(lambda m, c=command: m.command == c, timeout=60.0,
                                     what=f"/{ns}/refseg's answer")
        assert seg.found and (seg.mask.width, seg.mask.height) == (width, height)
        assert seg.area == width * height                   # the tiny model segments all
    # A new query for the head only: the head answers it, the wrist keeps its own.
    graph.publisher(String, "/head/refseg/query").publish(String(data="the green ball"))
    two_nodes["head"].wait_for(lambda m: m.command == "the green ball", timeout=60.0,
                               what="the head's answer to its second query")
    two_nodes["wrist"].clear()
    later = two_nodes["wrist"].wait_for(timeout=60.0, what="a later answer of the wrist")
    assert later.command == CAMERAS["wrist"][2] and later.mask.width == CAMERAS["wrist"][0]
    heard = {m.command for m in two_nodes["wrist"].messages}
    assert heard == {CAMERAS["wrist"][2]}, heard


def test_each_node_serves_its_own_segment_service(graph, two_nodes):
    from refseg_msgs.srv import Segment

    for ns, (width, height, _) in CAMERAS.items():
        response = graph.call(Segment, f"/{ns}/refseg/segment",
                              Segment.Request(command="could you grab the jar on the table"))
        assert response.success, response.message
        result = response.result
        assert result.expression == "the jar on the table"
        assert (result.mask.width, result.mask.height) == (width, height)  # its own camera


def test_the_default_names_are_left_to_a_node_without_namespace(graph, two_nodes):
    node = graph.node
    for ns in CAMERAS:
        publishers = node.get_publishers_info_by_topic(f"/{ns}/refseg/segmentation")
        assert [(p.node_name, p.node_namespace) for p in publishers] == [("refseg", f"/{ns}")]
        cameras = node.get_publishers_info_by_topic(f"/{ns}/camera/image_raw")
        assert [(p.node_name, p.node_namespace) for p in cameras] == [
            ("synthetic_camera", f"/{ns}")]
    # Their publishers are all made on configure, together: none of them on a default name.
    ours = [(topic, p.node_namespace) for topic in ("/refseg/segmentation", "/refseg/mask")
            for p in node.get_publishers_info_by_topic(topic)
            if p.node_namespace in {f"/{ns}" for ns in CAMERAS}]
    assert ours == []
