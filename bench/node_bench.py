"""Sections ``node`` and ``stream``: the real node in its own process, fed by this process.

``node``: one frame at a time (the next is sent when the answer came), end-to-end latency from
publishing an image to receiving its ``Segmentation``, minus the model's own time (the
message's ``inference_time``): conversion, message building and DDS transport both ways.

``stream``: a 30 Hz camera for a fixed time into a model slower than 30 Hz (the ``paper``
network on a CPU). The node keeps only the latest frame: the rest must be dropped, not queued.
Frames go reliable (keep last 2), so every frame not segmented was dropped by the node.
Latency of each answer, frames processed / dropped, and the node's resident memory over time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
from sensor_msgs.msg import Image
from std_msgs.msg import String

from bench.dds_echo import IN_TOPIC, OUT_TOPIC, qos
from refseg_model.inference import Segmenter
from refseg_model.synth.writer import write_dataset
from refseg_msgs.msg import Segmentation
from refseg_node.ros_io.image_conversion import rgb8_msg, to_rgb
from tests.harness import (
    REPO,
    Graph,
    NodeProcess,
    adopt_env,
    isolated_ros_env,
    node_args,
    reliable_qos,
)

from .stats import summarize, time_calls

QUERY = "pick up the red cup on the left"


def rss_mb(pid: int) -> float:
    """Return the resident memory (MB) of ``pid`` and its children, from /proc."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


def start_node(checkpoint: Path, log_dir: Path, device: str = "cpu") -> NodeProcess:
    """Start ``python -m refseg_node.node`` with a checkpoint, on a private DDS domain.

    This process adopts the same domain and transports; the node's log is ``log_dir/node.log``.
    """
    env = isolated_ros_env(log_dir)
    adopt_env(env)
    return NodeProcess("refseg_node.node", node_args(
        {"checkpoint": checkpoint, "device": device, "image_qos": "reliable"}), env,
        log_dir / "node.log")


class Client:
    """This process's side: publishes query and images, collects ``Segmentation`` messages."""

    def __init__(self) -> None:
        """Create the peer node (``tests.harness.Graph``) and its endpoints."""
        self.graph = Graph("refseg_bench")
        self.node = self.graph.node
        self.query_pub = self.node.create_publisher(String, "/refseg/query", 10)
        # Reliable (keep last 2): best-effort delivery of 1-3 MB frames loses some on one host,
        # which would be counted as frames the node dropped.
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw", reliable_qos(2))
        self.lock = threading.Condition()
        self.received: list[tuple[int, int, float]] = []  # (stamp ns, receive ns, model s)
        self.node.create_subscription(Segmentation, "/refseg/segmentation",
                                      self._on_segmentation, reliable_qos(10))

    def _on_segmentation(self, msg) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.received.append((stamp, now, float(msg.inference_time)))
            self.lock.notify_all()

    def send_query(self, text: str = QUERY) -> None:
        """Publish a query."""
        self.query_pub.publish(String(data=text))

    def send_image(self, msg) -> int:
        """Stamp ``msg`` with the wall clock now, publish it, return the stamp (ns)."""
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        self.image_pub.publish(msg)
        return now

    def wait_for(self, stamp: int, timeout: float) -> tuple[int, int, float] | None:
        """Wait for the answer to the frame stamped ``stamp``."""
        return self.wait_for_any({stamp}, timeout)

    def wait_for_any(self, stamps: set[int], timeout: float) -> tuple[int, int, float] | None:
        """Wait for the first answer to any of the frames stamped ``stamps``."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for item in self.received:
                    if item[0] in stamps:
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)

    def wait_until_serving(self, image, timeout: float, node: NodeProcess) -> None:
        """Send query + frame until the node answers (discovery and model load take time).

        Any answer to any frame sent here counts: with a model slower than the retry period,
        the answer to a frame arrives after newer frames were sent (waiting for the newest one
        alone never ends).
        """
        deadline = time.monotonic() + timeout
        sent: set[int] = set()
        while time.monotonic() < deadline:
            node.check_alive()
            self.send_query()
            time.sleep(0.2)
            sent.add(self.send_image(image))
            if self.wait_for_any(sent, 1.5) is not None:
                return
        raise RuntimeError(f"no Segmentation within {timeout} s:\n{node.log_tail()}")

    def close(self) -> None:
        """Shut rclpy down."""
        self.graph.close()


def middleware_floor(client: Client, images: dict, frames: int, log_dir: Path) -> dict:
    """Time image-there-header-back round trips through ``bench.dds_echo``; per frame size."""
    log = open(log_dir / "dds_echo.log", "w")
    echo = subprocess.Popen([sys.executable, "-m", "bench.dds_echo"], env=os.environ.copy(),
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    answers: dict[int, int] = {}
    done = threading.Condition()

    def on_answer(msg) -> None:
        with done:
            answers[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = \
                time.time_ns()
            done.notify_all()

    publisher = client.node.create_publisher(Image, IN_TOPIC, qos())
    subscription = client.node.create_subscription(Image, OUT_TOPIC, on_answer, qos())
    floors = {}
    try:
        deadline = time.monotonic() + 60.0
        while publisher.get_subscription_count() == 0 or subscription.get_publisher_count() == 0:
            if time.monotonic() > deadline or echo.poll() is not None:
                raise RuntimeError("the DDS echo process did not come up")
            time.sleep(0.1)
        for size, image in images.items():
            trips = []
            for i in range(frames + 3):  # the first 3 warm the path up
                stamp = time.time_ns()
                image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                publisher.publish(image)
                with done:
                    done.wait_for(lambda s=stamp: s in answers, timeout=3.0)
                if stamp in answers and i >= 3:
                    trips.append((answers[stamp] - stamp) / 1e9)
                time.sleep(0.02)
            floors[size] = summarize(trips)
    finally:
        echo.send_signal(2)
        try:
            echo.wait(timeout=10)
        except subprocess.TimeoutExpired:
            echo.kill()
        log.close()
        client.node.destroy_publisher(publisher)
        client.node.destroy_subscription(subscription)
    return floors


def node_overhead(checkpoint: Path, log_dir: Path, sizes, frames: int, log) -> list[dict]:
    """Measure end-to-end latency and node overhead, one frame in flight at a time.

    Then the middleware floor at the same sizes (an image to an echo process, its header back):
    what moving the frames costs with no node code at all.
    """
    node = start_node(checkpoint, log_dir)
    client = Client()
    rows = []
    images = {}
    try:
        for width, height in sizes:
            image = images[(width, height)] = _scene(width, height)
            client.wait_until_serving(image, 120.0, node)
            e2e, model, overhead, lost = [], [], [], 0
            for _ in range(frames):
                answer = client.wait_for(client.send_image(image), 3.0)
                if answer is None:
                    lost += 1
                    continue
                stamp, received, model_s = answer
                total = (received - stamp) / 1e9
                e2e.append(total)
                model.append(model_s)
                overhead.append(total - model_s)
            row = {"input": f"{width}x{height}", "frames": frames, "lost": lost,
                   "end_to_end": summarize(e2e), "model": summarize(model),
                   "overhead": summarize(overhead)}
            row["end_to_end_fps"] = 1.0 / row["end_to_end"]["median"] if e2e else None
            rows.append(row)
            log(f"  node {width}x{height}: end-to-end median "
                f"{row['end_to_end']['median'] * 1e3:.1f} ms ({row['end_to_end_fps']:.1f} fps), "
                f"model {row['model']['median'] * 1e3:.1f} ms,"
                f" overhead median {row['overhead']['median'] * 1e3:.1f} ms p95 "
                f"{row['overhead']['p95'] * 1e3:.1f} ms, {lost} lost")
        node.stop()  # the floor and the model alone are measured on quiet cores
        for row, size in zip(rows, sizes):
            row["model_alone"] = model_alone(checkpoint, images[size], frames)
            row["inside_over_alone"] = row["model"]["median"] / row["model_alone"]["median"]
            # The node calls the model once per frame, idle in between (moving the frame, the
            # answer, the next frame): the same calls with the node's idle gap between them.
            gap = row["end_to_end"]["median"] - row["model"]["median"]
            row["model_alone_paced"] = model_alone(checkpoint, images[size], frames, gap)
            row["inside_over_paced"] = (row["model"]["median"]
                                        / row["model_alone_paced"]["median"])
            log(f"  model alone {row['input']} (Segmenter.predict in this process, same "
                f"set-up): median {row['model_alone']['median'] * 1e3:.1f} ms back to back, "
                f"{row['model_alone_paced']['median'] * 1e3:.1f} ms with the node's "
                f"{gap * 1e3:.1f} ms idle gap between calls; inside the node "
                f"{row['inside_over_alone']:.2f}x / {row['inside_over_paced']:.2f}x that")
        floors = middleware_floor(client, images, frames, log_dir)
        for row, size in zip(rows, sizes):
            row["middleware_floor"] = floors[size]
            row["overhead_above_floor_ms"] = 1e3 * (row["overhead"]["median"]
                                                    - floors[size]["median"])
            log(f"  middleware floor {row['input']} (rclpy + Fast DDS, image there, header "
                f"back): median {floors[size]['median'] * 1e3:.1f} ms; the node's overhead is "
                f"{row['overhead_above_floor_ms']:.1f} ms above it")
    finally:
        client.close()
        node.stop()
    return rows


def model_alone(checkpoint: Path, image, frames: int, gap: float = 0.0) -> dict:
    """Time ``Segmenter.predict`` of ``checkpoint`` on ``image`` here, as the node runs it.

    ``gap`` seconds idle between calls (untimed) give the threads the rest they get in the node
    between frames; 0 calls back to back, with torch's threads still spinning from the last call.
    """
    seg = Segmenter.from_checkpoint(checkpoint, device="cpu")  # the node's default path
    rgb = to_rgb(image, 10 ** 8)
    times = time_calls(lambda: seg.predict(rgb, QUERY), 2, frames, lambda: None, 60.0,
                       pause=max(gap, 0.0))
    seg.release()
    return summarize(times)


def _scene(width: int, height: int):
    """Return an rgb8 message of a rendered synthetic scene (random pixels as a fallback)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, 1, seed=3, width=width, height=height, progress=False)
        path = next(Path(tmp, "images").glob("*.png"))
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    msg = rgb8_msg(rgb)
    msg.header.frame_id = "camera_color_optical_frame"
    return msg


def stream_summary(seconds: float, rate_hz: float, sent: list[int], got: list[tuple],
                   memory: list[tuple[float, float]]) -> dict:
    """Summarise a stream: answers ``got`` (stamp ns, receive ns, model s) to frames ``sent``.

    The tracker's answers (model time 0) count as processed frames, but the model's median,
    from which the latency bound is made, is taken over the model's own answers. Memory growth
    is the last sample less the first after the warm-up (a third of the run, at most 10 s), not
    the spread of samples that swing with each frame in flight.
    """
    latency = [(r[1] - r[0]) / 1e9 for r in got]
    model = [r[2] for r in got if r[2] > 0]
    rss = [m for _, m in memory]
    settled = [m for t, m in memory if t >= min(10.0, seconds / 3)]
    result = {"seconds": seconds, "rate_hz": rate_hz, "sent": len(sent), "processed": len(got),
              "dropped": len(sent) - len(got), "latency": summarize(latency),
              "model": summarize(model), "model_answers": len(model),
              "tracked_answers": len(got) - len(model), "rss_mb": memory,
              "rss_growth_mb": (settled[-1] - settled[0]) if len(settled) > 1 else None,
              "rss_spread_mb": (max(settled) - min(settled)) if settled else None,
              "rss_peak_mb": max(rss) if rss else None}
    if latency and model:
        bound = 2 * result["model"]["median"] + 0.05
        result["p95_bound_s"] = bound
        result["p95_within_bound"] = result["latency"]["p95"] <= bound
    return result


def streaming(checkpoint: Path, log_dir: Path, seconds: float, rate_hz: float, log) -> dict:
    """Feed a ``rate_hz`` camera for ``seconds``; count processed / dropped, latency, memory."""
    node = start_node(checkpoint, log_dir)
    client = Client()
    try:
        image = _scene(640, 480)
        client.wait_until_serving(image, 300.0, node)
        with client.lock:
            client.received.clear()
        sent: list[int] = []
        memory: list[tuple[float, float]] = []
        start = time.monotonic()
        next_frame, next_sample = start, start
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now >= next_sample:
                memory.append((now - start, rss_mb(node.pid)))
                next_sample += 1.0
                if len(memory) % 10 == 0:
                    with client.lock:
                        done = len(client.received)
                    log(f"  stream {now - start:5.1f} s: sent {len(sent)}, processed {done}, "
                        f"node RSS {memory[-1][1]:.0f} MB")
            if now >= next_frame:
                sent.append(client.send_image(image))
                next_frame += 1.0 / rate_hz
            time.sleep(max(0.0, min(next_frame, next_sample) - time.monotonic()))
        time.sleep(3 * max([r[2] for r in client.received] or [1.0]))  # the last answer
        memory.append((time.monotonic() - start, rss_mb(node.pid)))
        with client.lock:
            got = [r for r in client.received if r[0] in set(sent)]
    finally:
        client.close()
        node.stop()
    result = stream_summary(seconds, rate_hz, sent, got, memory)
    log(f"  stream: sent {result['sent']}, processed {result['processed']}, dropped "
        f"{result['dropped']}, latency p95 {result['latency'].get('p95', float('nan')):.3f} s "
        f"(bound {result.get('p95_bound_s', float('nan')):.3f} s), model median "
        f"{result['model'].get('median', float('nan')):.3f} s, RSS growth after warm-up "
        f"{result['rss_growth_mb']:.1f} MB")
    return result
