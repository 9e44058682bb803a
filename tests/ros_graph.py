"""ROS graph fixtures and helpers of the node and stress tests (registered by tests/conftest.py).

The node under test always runs as a separate process (``python -m refseg_node.node``); the
test process holds a peer node whose executor spins in a background thread. Every wait has a
deadline; nothing sleeps for a fixed time.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ros_env import REPO, isolated_ros_env

DEADLINE = 60.0          # seconds for anything to arrive (a loaded 2-core machine is slow)
START_DEADLINE = 120.0   # seconds for a node process to come up (imports torch)
TEST_VOCABULARY = [
    "pick up the red cup on the left", "the jar on the table", "the blue bottle next to the box",
    "sky", "far left person", "the green ball", "bottom right", "the two men on the right",
]


def make_checkpoint(path: Path, bias: float | None = None, seed: int = 0) -> Path:
    """Write a tiny random-initialised refseg checkpoint (the ``tiny`` preset).

    With ``bias`` the classifier's last layer outputs that constant logit everywhere (weights
    zeroed): +6 segments the whole image, -6 nothing. A real checkpoint either way.
    """
    import torch

    from refseg_model.checkpoint import make_payload, save_checkpoint
    from refseg_model.config import load_config
    from refseg_model.network import build_model
    from refseg_model.text import Vocabulary

    vocabulary = Vocabulary.build(TEST_VOCABULARY)
    cfg = load_config("tiny").model
    cfg.vocab_size = len(vocabulary)
    torch.manual_seed(seed)
    model = build_model(cfg)
    if bias is not None:
        with torch.no_grad():
            model.classifier.mlp2.weight.zero_()
            model.classifier.mlp2.bias.fill_(bias)
    return save_checkpoint(make_payload(model, cfg, vocabulary.to_list(), "highres"), path)


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
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR",
                "FASTDDS_BUILTIN_TRANSPORTS", "AMENT_PREFIX_PATH"):
        os.environ[key] = env[key]
    return env


def publish_acked(publisher, msg, timeout=DEADLINE):
    """Publish ``msg`` on a reliable publisher; return once every matched reader has it.

    Messages on different topics reach a node in no fixed order; waiting for the
    acknowledgement makes "the query, then the frame" an order the node really sees.
    """
    from rclpy.duration import Duration

    publisher.publish(msg)
    if not publisher.wait_for_all_acked(Duration(seconds=timeout)):
        pytest.fail(f"no acknowledgement within {timeout:.0f} s on {publisher.topic_name}")


def wait_until(predicate, timeout=DEADLINE, what="condition"):
    """Return the first truthy ``predicate()``; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class Collector:
    """Messages received on one topic, in arrival order."""

    def __init__(self, graph, msg_type, topic, qos):
        self.messages = []
        self._lock = threading.Lock()
        self.subscription = graph.node.create_subscription(msg_type, topic, self._add, qos)

    def _add(self, msg):
        with self._lock:
            self.messages.append(msg)

    def clear(self):
        with self._lock:
            self.messages.clear()

    def find(self, predicate):
        with self._lock:
            return [m for m in self.messages if predicate(m)]

    def wait_for(self, predicate=lambda m: True, timeout=DEADLINE, what="a message"):
        return wait_until(lambda: self.find(predicate), timeout, what)[0]


class Graph:
    """The test process's peer node, spinning in a background thread."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(f"refseg_test_peer_{os.getpid()}")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def collect(self, msg_type, topic, qos=None):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = qos or QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        return Collector(self, msg_type, topic, qos)

    def publisher(self, msg_type, topic, qos=None, subscribers=1):
        """Return a publisher once ``subscribers`` subscriptions have matched it."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = qos or QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub = self.node.create_publisher(msg_type, topic, qos)
        wait_until(lambda: pub.get_subscription_count() >= subscribers,
                   what=f"a subscriber on {topic}")
        return pub

    def call(self, srv_type, name, request, timeout=DEADLINE):
        client = self.node.create_client(srv_type, name)
        try:
            wait_until(client.service_is_ready, timeout, f"service {name}")
            future = client.call_async(request)
            wait_until(future.done, timeout, f"a response from {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope="session")
def graph(ros_env):
    """Yield a peer node in this process (one rclpy context for the session)."""
    import rclpy

    rclpy.init()
    g = Graph()
    yield g
    g.close()
    rclpy.try_shutdown()


class NodeProcess:
    """A ROS executable started as a separate process with ``--ros-args``."""

    def __init__(self, module, ros_args, env, log_path):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text, timeout=DEADLINE, after=0):
        """Wait until ``text`` appears in the log after character ``after``."""
        def seen():
            self.check_alive()
            return text in self.log()[after:]
        wait_until(seen, timeout, f"{text!r} in {self.log_path}")

    def check_alive(self):
        if self.process.poll() is not None:
            pytest.fail(f"process exited with {self.process.returncode}:\n{self.log()[-3000:]}")

    def stop(self, timeout=30.0) -> int:
        """Stop with SIGINT (as Ctrl-C); escalate if it does not exit. Return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def node_args(params: dict, params_file=None):
    args = []
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


def wait_active(graph, node_process, timeout=START_DEADLINE):
    """Wait until the refseg node reports the lifecycle state ``active``."""
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    def active():
        node_process.check_alive()
        response = graph.call(GetState, "/refseg/get_state", GetState.Request(), timeout)
        return response.current_state.id == State.PRIMARY_STATE_ACTIVE
    wait_until(active, timeout, "the refseg node to become active")


@pytest.fixture(scope="module")
def start_node(ros_env, graph, tmp_path_factory):
    """Yield a factory that starts ``python -m <module> --ros-args ...`` processes."""
    started = []

    def start(params, module="refseg_node.node", params_file=None, name="refseg"):
        log = tmp_path_factory.mktemp("node_logs") / f"{name}.log"
        proc = NodeProcess(module, node_args(params, params_file), ros_env, log)
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
