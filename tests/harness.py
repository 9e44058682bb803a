"""Start ROS 2 processes on a private DDS domain and talk to them: tests, bench and demo share it.

- :func:`isolated_ros_env`: an environment that keeps DDS traffic on this host, on a domain of
  its own, with the shipped Fast DDS profile (``config/fastdds.xml``) unless one is set;
- :class:`NodeProcess`: ``python -m <module> --ros-args ...`` with its output in a log file;
- :class:`Graph`: a peer node in this process whose executor spins in a background thread, with
  :class:`Collector` (messages of one topic), reliable publishers that wait for their
  subscribers, service calls and lifecycle state, and the destruction of what a caller created;
- :func:`wait_until`: every wait has a deadline, nothing sleeps for a fixed time;
- :func:`make_checkpoint`: a tiny real checkpoint (random weights or a constant answer).

No pytest here: a timeout raises :class:`WaitTimeout`, a dead process :class:`ProcessExited`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
import torch
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import QoSProfile, ReliabilityPolicy

from refseg_model.checkpoint import make_payload, save_checkpoint
from refseg_model.config import load_config
from refseg_model.network import build_model
from refseg_model.text import Vocabulary
from refseg_node.ros_io.dds_profile import PROFILE_VARIABLES, apply_default_profile

REPO = Path(__file__).resolve().parents[1]
DEADLINE = 60.0          # seconds for anything to arrive (a loaded 2-core machine is slow)
START_DEADLINE = 120.0   # seconds for a node process to come up (imports torch)
TINY_VOCABULARY = (
    "pick up the red cup on the left", "the jar on the table", "the blue bottle next to the box",
    "sky", "far left person", "the green ball", "bottom right", "the two men on the right",
)
SHARED_KEYS = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR",
               "FASTDDS_BUILTIN_TRANSPORTS", *PROFILE_VARIABLES,
               "AMENT_PREFIX_PATH")


class WaitTimeout(AssertionError):
    """A wait of the harness ran past its deadline."""


class ProcessExited(AssertionError):
    """A process started by the harness exited while it was expected to run."""


def isolated_ros_env(log_dir, domain_id: int | None = None) -> dict[str, str]:
    """Return a copy of ``os.environ`` that confines DDS traffic to this host and run.

    A random ``ROS_DOMAIN_ID`` (1..100, avoiding 0 that a developer's robot may use) unless one
    is given, localhost discovery, logs under ``log_dir``, the venv as the ament prefix and the
    shipped Fast DDS profile (large frames over shared memory) unless the caller set one.
    """
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.randint(1, 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOG_DIR"] = str(log_dir)
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    apply_default_profile(env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def adopt_env(env: dict[str, str]) -> None:
    """Apply the DDS settings of ``env`` to this process (call before ``rclpy.init``)."""
    for key in SHARED_KEYS:
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)


def wait_until(predicate, timeout: float = DEADLINE, what: str = "condition"):
    """Return the first truthy ``predicate()``; raise :class:`WaitTimeout` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def publish_acked(publisher, msg, timeout: float = DEADLINE) -> None:
    """Publish ``msg`` on a reliable publisher; return once every matched reader has it.

    Messages on different topics reach a node in no fixed order; waiting for the
    acknowledgement makes "the query, then the frame" an order the node really sees.
    """
    publisher.publish(msg)
    if not publisher.wait_for_all_acked(Duration(seconds=timeout)):
        raise WaitTimeout(f"no acknowledgement within {timeout:.0f} s on {publisher.topic_name}")


def reliable_qos(depth: int = 10):
    """Return a reliable, keep-last ``depth`` QoS profile."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


class Collector:
    """Messages received on one topic, in arrival order (with their arrival time)."""

    def __init__(self, node, msg_type, topic, qos):
        """Subscribe ``node`` to ``topic``."""
        self.messages = []
        self.arrivals: list[int] = []       # time.time_ns() of each message
        self._cv = threading.Condition()
        self.subscription = node.create_subscription(msg_type, topic, self._add, qos)

    def _add(self, msg):
        with self._cv:
            self.messages.append(msg)
            self.arrivals.append(time.time_ns())
            self._cv.notify_all()

    def clear(self):
        """Forget the messages received so far."""
        with self._cv:
            self.messages.clear()
            self.arrivals.clear()

    def count(self) -> int:
        """Return how many messages arrived."""
        with self._cv:
            return len(self.messages)

    def find(self, predicate):
        """Return the messages for which ``predicate`` is true."""
        with self._cv:
            return [m for m in self.messages if predicate(m)]

    def wait_for(self, predicate=lambda m: True, timeout: float = DEADLINE,
                 what: str = "a message"):
        """Return the first message for which ``predicate`` is true (waiting up to ``timeout``)."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for m in self.messages:
                    if predicate(m):
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what} on "
                                      f"{self.subscription.topic_name}")
                self._cv.wait(min(left, 0.1))


class Graph:
    """A peer node in this process, spinning in a background thread.

    With ``init`` (the default) it owns the rclpy context: ``close`` shuts it down.
    """

    def __init__(self, name: str | None = None, init: bool = True):
        """Create the node (after ``rclpy.init`` when ``init``) and start spinning."""
        self._owns_context = init
        if init:
            rclpy.init()
        self.node = rclpy.create_node(name or f"refseg_peer_{os.getpid()}")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def collect(self, msg_type, topic, qos=None) -> Collector:
        """Collect the messages of ``topic`` (reliable, depth 50 unless ``qos``)."""
        return Collector(self.node, msg_type, topic, qos or reliable_qos(50))

    def publisher(self, msg_type, topic, qos=None, subscribers: int = 1,
                  timeout: float = DEADLINE):
        """Return a publisher (reliable unless ``qos``) once ``subscribers`` have matched it."""
        pub = self.node.create_publisher(msg_type, topic, qos or reliable_qos(10))
        if subscribers:
            wait_until(lambda: pub.get_subscription_count() >= subscribers, timeout,
                       f"a subscriber on {topic}")
        return pub

    def call(self, srv_type, name: str, request, timeout: float = DEADLINE,
             resend_every: float | None = None):
        """Call service ``name`` and return its response.

        ``resend_every``: for a request that may safely be repeated (a query of state), send it
        again after so many seconds without an answer. A client sees the service ready once the
        request reaches the server, which may be before the server's answer can reach the
        client (Fast DDS matches the two directions separately); that first answer is then
        lost, and only a new request is answered (seen about once a ``make test`` run here).
        """
        client = self.node.create_client(srv_type, name)
        try:
            wait_until(client.service_is_ready, timeout, f"service {name}")
            end = time.monotonic() + timeout
            futures = []
            while True:
                futures.append(client.call_async(request))
                left = end - time.monotonic()
                wait = left if resend_every is None else min(left, resend_every)
                try:
                    done = wait_until(lambda: next((f for f in futures if f.done()), None),
                                      max(wait, 0.0), f"a response from {name}")
                    return done.result()
                except WaitTimeout:
                    if resend_every is None or time.monotonic() >= end:
                        raise
        finally:
            self.node.destroy_client(client)

    def lifecycle_state(self, node_name: str = "refseg", timeout: float = DEADLINE) -> str:
        """Return the lifecycle state label of ``node_name`` (``active``, ``inactive``...)."""
        response = self.call(GetState, f"/{node_name}/get_state", GetState.Request(), timeout,
                             resend_every=5.0)
        return response.current_state.label

    def change_state(self, transition_id: int, node_name: str = "refseg",
                     timeout: float = START_DEADLINE) -> bool:
        """Trigger a lifecycle transition of ``node_name``; return its success."""
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"/{node_name}/change_state", request, timeout).success

    def set_parameter(self, name: str, value, node_name: str = "refseg"):
        """Set one parameter of ``node_name``; return the ``SetParametersResult``."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(SetParameters, f"/{node_name}/set_parameters", request).results[0]

    def get_parameters(self, names, node_name: str = "refseg") -> dict:
        """Return ``{name: value}`` of parameters of ``node_name``."""
        values = self.call(GetParameters, f"/{node_name}/get_parameters",
                           GetParameters.Request(names=list(names))).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values)}

    def entities(self) -> set:
        """Return the publishers and subscriptions the peer node holds now."""
        return {*self.node.publishers, *self.node.subscriptions}

    def destroy_entities_since(self, kept: set) -> int:
        """Destroy the publishers and subscriptions not in ``kept`` (from :meth:`entities`).

        Return how many were destroyed. A publisher or collector left on a camera topic
        changes what a later node and camera see there: ``image_qos: auto`` subscribes
        reliable to follow a reliable publisher left behind, and a camera's
        ``wait_for_subscribers`` is satisfied by a collector left behind.
        """
        gone = self.entities() - kept
        publishers = set(self.node.publishers)
        for entity in gone:
            if entity in publishers:
                self.node.destroy_publisher(entity)
            else:
                self.node.destroy_subscription(entity)
        return len(gone)

    def close(self):
        """Stop spinning and destroy the node (and the context when this graph owns it)."""
        self.executor.shutdown()
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()


class NodeProcess:
    """A ROS executable (``python -m module --ros-args ...``) as a separate process."""

    def __init__(self, module: str, ros_args, env, log_path, cwd=REPO):
        """Start the process; its stdout and stderr go to ``log_path``."""
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    @property
    def pid(self) -> int:
        """Return the process id."""
        return self.process.pid

    def log(self) -> str:
        """Return everything the process wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the log."""
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_log(self, text: str, timeout: float = DEADLINE, after: int = 0) -> None:
        """Wait until ``text`` appears in the log after character ``after``."""
        def seen():
            self.check_alive()
            return text in self.log()[after:]
        wait_until(seen, timeout, f"{text!r} in {self.log_path}")

    def check_alive(self) -> None:
        """Raise :class:`ProcessExited` (with the log's end) when the process has exited."""
        if self.process.poll() is not None:
            raise ProcessExited(f"process exited with {self.process.returncode}:\n"
                                f"{self.log()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """Stop with SIGINT (as Ctrl-C); escalate if it does not exit. Return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        return self.process.returncode


def node_args(params: dict, params_file=None) -> list[str]:
    """Return ``--ros-args`` arguments: an optional params file, then ``-p name:=value``."""
    args = []
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


def wait_active(graph: Graph, process: NodeProcess, timeout: float = START_DEADLINE,
                node_name: str = "refseg") -> None:
    """Wait until ``node_name`` (run by ``process``) reports the lifecycle state ``active``."""
    def active():
        process.check_alive()
        return graph.lifecycle_state(node_name, timeout) == "active"
    wait_until(active, timeout, f"the {node_name} node to become active")


def make_checkpoint(path: Path, bias: float | None = None, seed: int = 0,
                    context: str = "none") -> Path:
    """Write a tiny random-initialised refseg checkpoint (the ``tiny`` preset).

    With ``bias`` the classifier's last layer outputs that constant logit everywhere (weights
    zeroed): +6 segments the whole image, -6 nothing. A real checkpoint either way.
    ``context``: the network's context block (``ModelConfig.context``).
    """
    vocabulary = Vocabulary.build(TINY_VOCABULARY)
    cfg = load_config("tiny").model
    cfg.context = context
    torch.manual_seed(seed)
    model = build_model(cfg, vocabulary=vocabulary.to_list())
    if bias is not None:
        with torch.no_grad():
            model.classifier.mlp2.weight.zero_()
            model.classifier.mlp2.bias.fill_(bias)
    return save_checkpoint(make_payload(model, cfg, vocabulary.to_list(), "highres"), path)
