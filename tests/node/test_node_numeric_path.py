"""The node picks its numeric path (``precision: auto`` by default) and logs which and why."""

import os

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_node_logs_the_numeric_path_it_chose_and_its_threads(start_node, graph, checkpoints):

    from tests.ros_graph import wait_active

    proc = start_node({"checkpoint": checkpoints["random"], "device": "cpu"},
                      name="refseg_auto")  # precision left at its default: auto
    wait_active(graph, proc)
    proc.wait_log("numeric path")
    line = next(line for line in proc.log().splitlines() if "numeric path" in line)
    # The node's own choice (its probe ran in its process): name and reason agree.
    precision = next(p for p in ("fp32", "bf16") if f"device=cpu, {p}+channels_last)" in line)
    assert f"numeric path {precision}: " in line
    assert "no compile below" in line  # the tiny network stays eager
    assert f"torch threads {len(os.sched_getaffinity(0))}" in line
    assert "interop threads 1" in line and "malloc tuned True" in line
