"""ROS graph fixtures of the node and stress tests (registered by tests/conftest.py).

The processes, the peer node and the waits are ``tests.harness`` (bench and demo use it
too); this file only turns them into pytest fixtures. The node under test always runs as a
separate process (``python -m refseg_node.node``); the test process holds a peer node whose
executor spins in a background thread.
"""

import os
import random
from types import SimpleNamespace

import numpy as np
import pytest

from tests.harness import (  # noqa: F401 - re-exported for the tests
    DEADLINE,
    REPO,
    START_DEADLINE,
    Graph,
    NodeProcess,
    ProcessExited,
    WaitTimeout,
    adopt_env,
    isolated_ros_env,
    make_checkpoint,
    node_args,
    publish_acked,
    wait_active,
    wait_until,
)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Paths of three tiny checkpoints: ``random``, ``everything`` (+6), ``nothing`` (-6)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        "random": make_checkpoint(folder / "random.pt"),
        "everything": make_checkpoint(folder / "everything.pt", bias=6.0),
        "nothing": make_checkpoint(folder / "nothing.pt", bias=-6.0),
    }


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory):
    """Isolated ROS environment, also applied to this process (before ``rclpy.init``)."""
    env = isolated_ros_env(tmp_path_factory.mktemp("ros_log"),
                           domain_id=random.Random(os.getpid()).randint(1, 100))
    adopt_env(env)
    return env


@pytest.fixture(scope="session")
def session_graph(ros_env):
    """Yield a peer node in this process (one rclpy context for the session)."""
    g = Graph(f"refseg_test_peer_{os.getpid()}")
    yield g
    g.close()


@pytest.fixture(scope="module")
def graph(session_graph):
    """Yield the session's peer node; what a test module creates on it goes at the module's end.

    Publishers and collectors left by one module would change what the next module's nodes see:
    a reliable publisher left on ``/camera/image_raw`` turned a later node's ``image_qos: auto``
    reliable, and best-effort collectors left there satisfied a later camera's
    ``wait_for_subscribers`` before that node was matched (best-effort frames lost).
    """
    kept = session_graph.entities()
    yield session_graph
    session_graph.destroy_entities_since(kept)


@pytest.fixture(scope="module")
def start_node(ros_env, graph, tmp_path_factory):
    """Yield a factory that starts ``python -m <module> --ros-args ...`` processes."""
    started = []

    def start(params, module="refseg_node.node", params_file=None, name="refseg", env=None,
              extra_args=()):
        log = tmp_path_factory.mktemp("node_logs") / f"{name}.log"
        proc = NodeProcess(module, [*node_args(params, params_file), *extra_args],
                           env or ros_env, log)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def make_picture(height=480, width=640, seed=0):
    """Return a deterministic RGB picture: smooth gradients plus a few coloured blocks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                    (x + y) % 256], axis=2).astype(np.uint8)
    for _ in range(6):
        r0, c0 = rng.integers(0, height - 20), rng.integers(0, width - 20)
        rgb[r0:r0 + height // 5, c0:c0 + width // 6] = rng.integers(0, 256, 3)
    return rgb


def rgbd_io(graph, **outputs):
    """Return the camera's and the query's publishers and a collector per output.

    ``query``, ``image``, ``depth`` and ``info`` publish on the node's default topics; each
    keyword ``name=(type, topic)`` adds a collector of that output.
    """
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String

    create = graph.node.create_publisher
    return SimpleNamespace(
        query=create(String, "/refseg/query", 10),
        image=create(Image, "/camera/image_raw", 10),
        depth=create(Image, "/camera/depth/image_raw", 10),
        info=create(CameraInfo, "/camera/camera_info", 10),
        **{name: graph.collect(msg_type, topic) for name, (msg_type, topic) in outputs.items()})
