"""A spoken command through a real graph: WAV -> speech_command -> /refseg/query -> the node.

Three processes beside this test's peer node: the synthetic camera (the demo scene), the refseg
node with the shipped checkpoint, and ``speech_command`` reading one fixture WAV. The command it
heard must come back as the ``command`` of a ``Segmentation`` from the node. The first case is
the issue's "done when": "pick up the red cup on the left" (the demo scene's red cup). The second
runs the three in namespace ``/head``: the speech node sends to the refseg node it serves, there.
"""

import json

import pytest

from tests.harness import WaitTimeout
from tests.ros_graph import DEADLINE, START_DEADLINE, wait_active

pytestmark = [pytest.mark.ros, pytest.mark.slow]
pytest.importorskip("pocketsphinx")

CASES = [("klatt_1.wav", "pick up the red cup on the left", "the red cup on the left", ""),
         ("female_2.wav", "grab the blue bottle next to the box",
          "the blue bottle next to the box", "/head")]

UTTERANCES = 5  # speech processes started, one after the other, before the test gives up


@pytest.mark.parametrize(("fixture", "command", "expression", "namespace"), CASES,
                         ids=[case[0] for case in CASES])
def test_spoken_command_reaches_the_node_and_a_segmentation_comes_back(
        start_node, graph, fixture, command, expression, namespace):
    from std_msgs.msg import String

    from refseg_msgs.msg import Segmentation

    node_name = f"{namespace}/refseg"
    segmentations = graph.collect(Segmentation, f"{node_name}/segmentation")
    queries = graph.collect(String, f"{node_name}/query")
    heard = graph.collect(String, f"{node_name}/speech")
    placed = ["-r", f"__ns:={namespace}"] if namespace else []
    tag = namespace.replace("/", "_")                        # in the processes' log names
    start_node({"scene": "demo", "qos": "reliable", "rate": 5.0},
               module="refseg_node.sim.synthetic_camera", name=f"camera{tag}",
               extra_args=placed)
    node = start_node({"device": "cpu", "image_qos": "reliable", "log_period": 0.0},
                      name=f"refseg{tag}", extra_args=placed)
    wait_active(graph, node, node_name=node_name.lstrip("/"))
    # The default confidence threshold (0.5): the command must be heard well enough to be sent.
    # Up to 5 utterances (3 until 2026-12-04, when all 3 missed once in a full `make test`): on
    # this host, 1 run in 3 or 4 the speech process's query publisher
    # never matches the node's subscription (Fast DDS discovery; the test's own reader does
    # match; a later process's /refseg/speech may not reach this test's reader either).
    result = None
    for attempt in range(UTTERANCES):
        speech = start_node({"source": f"tests/fixtures/speech/{fixture}",
                             "wait_for_subscriber": 15.0}, module="refseg_node.speech.command_node",
                            name=f"speech_command_{attempt}{tag}", extra_args=placed)
        try:
            record = json.loads(heard.wait_for(timeout=START_DEADLINE if attempt == 0 else 40.0,
                                               what=f"{node_name}/speech").data)
            heard.clear()
            assert record["sent"] and record["source"].endswith(fixture)
            assert record["text"] == command
            query = queries.wait_for(what=f"the spoken query on {node_name}/query")
            assert query.data == record["text"]
            result = segmentations.wait_for(lambda m: m.command == record["text"], timeout=20.0,
                                            what="a Segmentation for the spoken command")
        except WaitTimeout:
            speech.stop()
            continue
        break
    assert result is not None, f"no Segmentation for the spoken command in {UTTERANCES} utterances"
    assert result.command == command and result.expression == expression
    assert result.mask.width == 640 and result.mask.height == 480
    assert speech.process.wait(timeout=DEADLINE) == 0, speech.log()
