"""Measure the grasp-ready outputs of issue 14: the target's 3D extent and tracking over a pan.

Sections (``--section``, default all):

- ``extent``: the demo scene (640x480). (a) ``refseg_node.perception.cloud`` on the true mask of
  the red cup on the left with the frame's 16UC1 depth: is the robust 3D centre inside the cup's
  true box, and how do width and height (camera x and y) compare with the span of the cup's visible
  surface; (b) the same through the node in a real graph with ``--checkpoint``: the model's
  mask, the Segmentation's extent and the share of /refseg/target_cloud points on the true cup.
- ``tracker``: ``refseg_node.perception.tracking`` alone over one 2-second sweep of the panning
  camera (10 Hz, +-4 degrees), key frame the true mask (the tracker as if the model were
  perfect), and with a key frame every 10 frames (a model answering once a second).
- ``replay``: the node's answering rules replayed frame by frame over the pan, with no clock:
  the model (``--checkpoint``) takes a frame, its answer comes ``--model-period`` x 10 frames
  later and is caught up through the frames since (``perception.tracking.TrackedStream``, what
  the node runs), the tracker answers every other frame. IoU of every frame's mask with the true
  cup, tracking on and the model alone (its last answer held), and ``--figure``: a picture of
  the masks against the truth. What the code gives whatever the machine's load.
- ``graph``: ``synthetic_camera motion:=pan`` -> the node with ``min_inference_time`` (a model
  that answers once a second), tracking on and off: frames answered, masks per second, IoU of
  each mask with the true cup and of each tracked mask with its key answer moved by the true
  motion (the camera only turns, so that motion is the homography of the rotation). Wall-clock
  bound: on a loaded machine the node answers fewer frames. ``--time-scale S`` runs camera, pan
  and model S times slower (10/S Hz, model period S s: the same 10 frames per model answer),
  which gives a node starved of CPU S times more of it per frame.

Prints a JSON report (and writes it with ``--json``). Example::

    python tools/grasp_measure.py --json grasp.json --figure docs/img/tracking_pan.png
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header, String

from refseg_model import default_checkpoint_path
from refseg_model.drawing import draw_mask, outline_mask
from refseg_model.fileio import atomic_open, atomic_write
from refseg_model.inference import Segmenter
from refseg_model.metrics import mask_iou
from refseg_model.synth import make_demo_scene
from refseg_model.synth.motion import (
    inside_true_box,
    pan_offsets,
    render_view,
    rotation_homography,
    visible_surface,
)
from refseg_msgs.msg import Segmentation
from refseg_node.language.queries import prepare_query, resolve_query
from refseg_node.parameters import PARAMETERS, Settings
from refseg_node.perception.cloud import target_geometry
from refseg_node.perception.geometry import Intrinsics
from refseg_node.perception.pipeline import carried_frame
from refseg_node.perception.tracking import MaskTracker, TrackedStream, to_gray
from refseg_node.ros_io import messages
from refseg_node.ros_io.image_conversion import (
    decode_frame,
    depth16_msg,
    image_to_array,
    rgb8_msg,
)
from refseg_node.ros_io.pointcloud2 import cloud_to_arrays
from refseg_node.sensors import SensorCache
from refseg_node.sim.synthetic_camera import camera_info_msg

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:   # the process harness lives with the tests (tests/harness.py)
    sys.path.insert(0, str(REPO))

from tests.harness import Graph as HarnessGraph  # noqa: E402
from tests.harness import (  # noqa: E402
    NodeProcess,
    adopt_env,
    isolated_ros_env,
    node_args,
    publish_acked,
    wait_active,
    wait_until,
)

W, H, RATE = 640, 480, 10.0
COMMAND = "pick up the red cup on the left"


def millimetres(depth_m: np.ndarray) -> np.ndarray:
    """Return the depth as a 16UC1 camera sends it, in metres (NaN where there is none)."""
    mm = np.round(depth_m * 1000.0)
    return np.where(mm > 0, mm / 1000.0, np.nan)


def summary(values) -> dict:
    """Return min, mean, median and max of ``values`` (rounded), and their count."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "min": round(float(v.min()), 4), "mean": round(float(v.mean()), 4),
            "median": round(float(np.median(v)), 4), "max": round(float(v.max()), 4)}


def judge_extent(scene, center, size) -> dict:
    """Compare a centre and an axis-aligned size with the cup's truth (box, visible span)."""
    span = np.ptp(visible_surface(scene, 1), axis=0)
    ratio = np.asarray(size[:2]) / span[:2]
    return {"center_3d_m": [round(float(v), 4) for v in center],
            "center_inside_true_box": bool(inside_true_box(scene, 1, center)),
            "size_3d_m": [round(float(v), 4) for v in size],
            "true_span_m": [round(float(v), 4) for v in span],
            "width_ratio": round(float(ratio[0]), 3), "height_ratio": round(float(ratio[1]), 3),
            "width_height_within_20pct": bool(np.all(np.abs(ratio - 1) <= 0.2))}


def section_extent_offline() -> dict:
    """Measure ``refseg_node.perception.cloud`` on the true mask (part a of ``extent``)."""
    scene, _, region = make_demo_scene(0, W, H)
    k = Intrinsics.from_k(scene.K.ravel(), W, H)
    geometry = target_geometry(millimetres(scene.depth_m), region.mask, k, scene.rgb)
    out = judge_extent(scene, geometry.extent.center, geometry.extent.size)
    out["num_points"] = geometry.extent.num_points
    out["mask"] = "ground truth"
    return out


class Graph:
    """The harness's graph with a camera and the node started on a private domain."""

    def __init__(self, log_dir: Path, debug: bool = False):
        """Start rclpy on a private domain (``debug``: the node logs its frame timings)."""
        self.env = isolated_ros_env(log_dir, domain_id=random.randint(101, 200))
        adopt_env(self.env)
        self.graph = HarnessGraph("grasp_measure")
        self.log_dir = log_dir
        self.debug = debug
        self.processes = []

    def start(self, module: str, params: dict, name: str):
        """Start ``module`` with ``params``; return its process."""
        extra = ["--log-level", "refseg:=debug"] if self.debug and module.endswith(".node") else []
        proc = NodeProcess(module, node_args(params) + extra, self.env,
                           self.log_dir / f"{name}.log")
        self.processes.append(proc)
        return proc

    def close(self):
        """Stop every process and the graph."""
        for proc in self.processes:
            proc.stop()
        self.graph.close()


def node_params(args, **extra) -> dict:
    """Return the node's parameters for this run."""
    params = {"device": args.device, "image_qos": "reliable", "log_period": 1.0}
    if args.checkpoint:
        params["checkpoint"] = args.checkpoint
    params.update(extra)
    return params


def section_extent_graph(args, g: Graph) -> dict:
    """Measure the node on the demo frame with the model's mask (part b of ``extent``)."""
    scene, _, region = make_demo_scene(0, W, H)
    node = g.start("refseg_node.node", node_params(args), "node_extent")
    wait_active(g.graph, node)
    segs = g.graph.collect(Segmentation, "/refseg/segmentation")
    clouds = g.graph.collect(PointCloud2, "/refseg/target_cloud")
    pubs = {name: g.graph.publisher(t, topic) for name, t, topic in (
        ("query", String, "/refseg/query"), ("depth", Image, "/camera/depth/image_raw"),
        ("info", CameraInfo, "/camera/camera_info"), ("image", Image, "/camera/image_raw"))}
    seg = None
    for sec in range(100, 110):
        header = Header(frame_id="camera_color_optical_frame")
        header.stamp.sec = sec
        publish_acked(pubs["query"], String(data=COMMAND))
        publish_acked(pubs["depth"], depth16_msg(scene.depth_m, header))
        publish_acked(pubs["info"], camera_info_msg(scene.K, W, H, header))
        publish_acked(pubs["image"], rgb8_msg(scene.rgb, header))
        try:
            seg = segs.wait_for(lambda m, s=sec: m.header.stamp.sec == s, 60.0)
            break
        except AssertionError:
            continue
    out = {"mask": "the model's",
           "model_iou": round(mask_iou(image_to_array(seg.mask) > 0, region.mask), 3)}
    if not seg.has_extent:
        out["no_3d_reason"] = seg.no_3d_reason
        node.stop()
        return out
    c, s = seg.center_3d, seg.size_3d
    out.update(judge_extent(scene, (c.x, c.y, c.z), (s.x, s.y, s.z)))
    cloud = clouds.wait_for(lambda m: m.header.stamp == seg.header.stamp)
    xyz, _ = cloud_to_arrays(cloud)
    u = np.rint(xyz[:, 0] * scene.K[0, 0] / xyz[:, 2] + scene.K[0, 2]).astype(int)
    v = np.rint(xyz[:, 1] * scene.K[1, 1] / xyz[:, 2] + scene.K[1, 2]).astype(int)
    out["cloud_points"] = int(len(xyz))
    out["cloud_points_on_true_cup"] = round(float(region.mask[v, u].mean()), 4)
    out["cloud_depth_error_max_m"] = round(float(np.abs(xyz[:, 2] - scene.depth_m[v, u]).max()),
                                           5)
    node.stop()
    return out


def section_tracker() -> dict:
    """Measure the tracker alone over a 2-second sweep (``tracker``)."""
    scene, _, _ = make_demo_scene(0, W, H)
    angles = pan_offsets(4.0, 4.0, RATE)
    sweep = angles[int(RATE):] + angles[:1]   # +4 -> -4 degrees: 2 s, the fastest part
    views = [render_view(scene, a, noise_seed=i) for i, a in enumerate(sweep[:21])]
    out = {}
    for name, every in (("key_once", 0), ("key_every_10_frames", 10)):
        tracker, ious, times = MaskTracker(), [], []
        for i, view in enumerate(views):
            truth = view.object_mask(1)
            if i == 0 or (every and i % every == 0):
                tracker.start(to_gray(view.rgb), truth)
                continue
            start = time.perf_counter()
            result = tracker.step(to_gray(view.rgb))
            times.append(time.perf_counter() - start)
            ious.append(mask_iou(result.mask, truth) if result.mask is not None else 0.0)
        out[name] = {"iou": summary(ious), "step_ms": summary(1e3 * np.asarray(times))}
    centres = [np.nonzero(v.object_mask(1))[1].mean() for v in views]
    out["cup_moves_px"] = round(float(np.ptp(centres)), 1)
    out["frames"] = len(views)
    return out


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system, seconds) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pan_window(first: int, count: int) -> list:
    """Render ``count`` frames of the camera's pan from angle index ``first`` on (as it does).

    ``synthetic_camera`` renders each distinct angle of a sweep once, with the noise of the
    first frame that has it, and repeats the sweep; so does this.
    """
    scene = make_demo_scene(0, W, H)[0]
    angles = pan_offsets(4.0, 4.0, RATE)
    seeds: dict[float, int] = {}
    for i, angle in enumerate(angles):
        seeds.setdefault(round(angle, 9), i)
    cache: dict[float, object] = {}
    views = []
    for i in range(first, first + count):
        key = round(angles[i % len(angles)], 9)
        if key not in cache:
            cache[key] = render_view(scene, angles[i % len(angles)], noise_seed=seeds[key])
        views.append(cache[key])
    return views


def section_replay(args) -> dict:
    """Replay the node's answering rules over the pan frame by frame (``replay``).

    The model takes a frame when it is free and answers it ``latency`` frames later (a model
    period of 1 s at 10 Hz: 10 frames); the answer is then caught up through the frames tracked
    since (``TrackedStream.answer``) and the tracker answers every frame the model does not
    take (``TrackedStream.track``), as the node's worker and tracker threads do. The window is
    the ``--seconds`` after the model's first answer, starting at +4 degrees (the +4 -> -4
    sweep first). The model alone answers the frames it takes, each ``latency`` frames late;
    a consumer holds the last one it got.
    """
    latency = max(1, int(round(args.model_period * RATE)))
    frames = int(round(args.seconds * RATE))
    # ``latency`` more frames after the window: the model's answers to its last frames come then
    views = pan_window(int(RATE) - latency, latency + frames + latency)
    truth = [v.object_mask(1) for v in views]
    grays = [to_gray(v.rgb) for v in views]
    segmenter = Segmenter.from_checkpoint(args.checkpoint or default_checkpoint_path(),
                                          device=args.device)
    expression = resolve_query(COMMAND, 10_000, None).expression
    query = prepare_query(COMMAND, expression, segmenter.unknown_words)
    stream = TrackedStream()
    predictions, answers, published = {}, {}, {}   # frame -> prediction / answer / frame out
    job, step_cpu, catch_up_cpu, frame_cpu, model_cpu = None, [], [], [], []
    # What the node's tracker thread does with a carried mask besides tracking (CPU per frame):
    # the image message to RGB, the target, its points and extent, the output messages.
    settings = Settings.from_values({p.name: p.default for p in PARAMETERS})
    sensors = SensorCache()
    headers = [Header(frame_id="camera_color_optical_frame") for _ in views]
    for i, header in enumerate(headers):
        header.stamp.sec = 100 + i
    sensors.set_camera_info(camera_info_msg(views[0].camera.K, W, H, headers[0]))
    for i in range(len(views)):
        if job is not None and i - job >= latency:             # the model's answer comes
            pred = predictions[job]
            start = time.thread_time()
            stream.answer(job, grays[job], pred.mask, pred.probs)
            catch_up_cpu.append(time.thread_time() - start)
            answers[job] = {"mask": pred.mask, "tracked": False, "age": 0}
            published[job] = i
            job = None
        if job is None:                                        # the model takes this frame
            job = i
            start = time.process_time()
            predictions[i] = segmenter.predict(views[i].rgb, expression)
            model_cpu.append(time.process_time() - start)
            continue
        if not stream.active:                                  # nothing to carry yet
            continue
        start = time.thread_time()
        carried = stream.track(i, grays[i])
        step_cpu.append(time.thread_time() - start)
        if carried is not None:
            answers[i] = {"mask": carried.mask, "tracked": True, "age": carried.age}
            image = rgb8_msg(views[i].rgb, headers[i])
            sensors.add_depth(depth16_msg(views[i].depth_m, headers[i]))
            start = time.thread_time()
            result = carried_frame(image.header, decode_frame(image), carried, query, settings,
                                   sensors, lambda kind, text: None)
            messages.segmentation_msg(result)
            messages.extent_markers(result.header, result.geometry.extent)
            messages.target_cloud_msg(result.header, result.geometry.points)
            frame_cpu.append(time.thread_time() - start)
    window = list(range(latency, latency + frames))
    per_frame, held, last = [], [], None
    for i in window:
        out = {"frame": i - latency, "pan_deg": round(views[i].pan_deg, 3)}
        if i in answers:
            a = answers[i]
            out.update(answer="tracker" if a["tracked"] else "model", age=a["age"],
                       iou=round(mask_iou(a["mask"], truth[i]), 4))
        else:
            out["answer"] = None
        # the model alone: the newest answer published by this frame
        done = [j for j, at in published.items() if at <= i]
        last = predictions[max(done)].mask if done else None
        out["model_alone_held_iou"] = (round(mask_iou(last, truth[i]), 4) if last is not None
                                       else 0.0)
        out["model_alone_answer"] = i in published
        held.append(out["model_alone_held_iou"])
        per_frame.append(out)
    two_s = [f for f in per_frame if f["frame"] < int(2 * RATE) + 1]
    tracked = [f["iou"] for f in per_frame if f["answer"] == "tracker"]
    model = [f["iou"] for f in per_frame if f["answer"] == "model"]
    report = {
        "model_period_s": args.model_period, "latency_frames": latency, "frames": len(window),
        "frames_answered": sum(f["answer"] is not None for f in per_frame),
        "masks_per_camera_frame": round(sum(f["answer"] is not None for f in per_frame)
                                        / len(window), 3),
        "model_alone_masks_per_camera_frame": round(
            sum(f["model_alone_answer"] for f in per_frame) / len(window), 3),
        "iou_truth_model_answers": summary(model),
        "iou_truth_tracked": summary(tracked),
        "iou_truth_every_frame": summary(f.get("iou", 0.0) for f in per_frame),
        "iou_truth_every_frame_first_2s": summary(f.get("iou", 0.0) for f in two_s),
        "model_alone_iou_truth_last_answer_held": summary(held),
        "model_alone_first_2s": summary(f["model_alone_held_iou"] for f in two_s),
        "tracked_age": summary(f["age"] for f in per_frame if f["answer"] == "tracker"),
        "tracker_step_cpu_ms": summary(1e3 * np.asarray(step_cpu)),
        "catch_up_cpu_ms": summary(1e3 * np.asarray(catch_up_cpu)),
        "tracked_frame_rest_cpu_ms": summary(1e3 * np.asarray(frame_cpu)),
        "model_answer_cpu_s_all_threads": summary(model_cpu),
        "per_frame": per_frame,
    }
    if args.figure:
        write_figure(args.figure, views[latency:], truth[latency:], per_frame,
                     [answers.get(i, {}).get("mask") for i in window],
                     [predictions[max(j for j, at in published.items() if at <= i)].mask
                      for i in window], latency)
        report["figure"] = str(args.figure)
    return report


def write_figure(path: Path, views, truth, per_frame, masks, held, latency: int) -> None:
    """Draw the masks of the replay against the truth over the pan (and the IoU per frame)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    union = np.logical_or.reduce(truth)
    rows, cols = np.nonzero(union)
    pad = 24
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad, H)
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad, W)
    shown = list(range(0, min(len(views), int(2 * RATE) + 1), 4))
    fig = plt.figure(figsize=(2.1 * len(shown), 7.6))
    grid = fig.add_gridspec(3, len(shown), height_ratios=[1, 1, 1.2])
    green, blue, orange, red = (40, 220, 40), (40, 110, 255), (255, 150, 0), (230, 40, 40)
    for col, i in enumerate(shown):
        f = per_frame[i]
        for row, (mask, tint, label) in enumerate((
                (masks[i], blue if f["answer"] == "tracker" else orange,
                 f"{f['answer'] or 'no answer'}"
                 + (f" age {f['age']}" if f["answer"] == "tracker" else "")
                 + (f"\nIoU {f['iou']:.2f}" if "iou" in f else "")),
                (held[i], red, f"model alone (held)\nIoU {f['model_alone_held_iou']:.2f}"))):
            picture = views[i].rgb.copy()
            if mask is not None:
                draw_mask(picture, mask, tint=tint, outline=tint, alpha=0.45, thickness=1)
            outline_mask(picture, truth[i], green, 1)
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(picture[r0:r1, c0:c1])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title((f"frame {f['frame']} ({f['pan_deg']:+.1f} deg)\n" if row == 0 else "")
                         + label, fontsize=8)
    ax = fig.add_subplot(grid[2, :])
    x = [f["frame"] / RATE for f in per_frame]
    ax.plot(x, [f.get("iou", 0.0) for f in per_frame], "o-", ms=3, color="tab:blue",
            label="tracking on (model answers: orange)")
    ax.plot([f["frame"] / RATE for f in per_frame if f["answer"] == "model"],
            [f["iou"] for f in per_frame if f["answer"] == "model"], "o", color="tab:orange")
    ax.plot(x, [f["model_alone_held_iou"] for f in per_frame], "s--", ms=3, color="tab:red",
            label="model alone, last answer held")
    ax.axhline(0.7, color="grey", lw=0.8, ls=":", label="bound 0.7")
    ax.set_xlabel(f"seconds after the model's first answer (model answers {latency} frames "
                  "late)")
    ax.set_ylabel("IoU with the true cup")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("Tracking over the pan: mask (tint) vs the true cup (green outline)",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        fig.savefig(handle, format="png", dpi=90)
    plt.close(fig)


def run_pan(args, g: Graph, tracking: bool, seconds: float) -> dict:
    """Run camera -> slow node once; return frame-by-frame figures."""
    K = make_demo_scene(0, W, H)[0].K
    segs = g.graph.collect(Segmentation, "/refseg/segmentation")
    truth_c = g.graph.collect(Image, "/synthetic_camera/target_mask")
    pose_c = g.graph.collect(PoseStamped, "/synthetic_camera/camera_pose")
    node = g.start("refseg_node.node", node_params(
        args, min_inference_time=args.model_period * args.time_scale, tracking=tracking),
        f"node_pan_{'tracking' if tracking else 'model_only'}")
    wait_active(g.graph, node)
    query = g.graph.publisher(String, "/refseg/query")
    query.publish(String(data=COMMAND))
    segs.wait_for(lambda m: m.found and not m.tracked, 180.0, "the model's first answer")
    for c in (segs, truth_c, pose_c):
        c.clear()

    def key(m):
        return m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec

    # The window: frames the camera stamped after the first answer was seen here. Frames taken
    # off the wire after clear() may be older (this process lags on a loaded machine): they
    # came while the model had not answered yet, so nothing could be carried onto them.
    since = time.time_ns()
    frames = int(seconds * RATE)

    def window_stamps():
        return sorted(key(m) for m in truth_c.messages if key(m) >= since)

    cpu0, wall0, load0 = cpu_seconds(node.pid), time.monotonic(), os.getloadavg()[0]
    wait_until(lambda: len(window_stamps()) >= frames + 15,
               (seconds + 1.5) * args.time_scale + 60, "the camera's frames")
    cpu, wall = cpu_seconds(node.pid) - cpu0, time.monotonic() - wall0
    load = (load0 + os.getloadavg()[0]) / 2
    node.stop()
    log = node.log()
    stamps = window_stamps()[:frames]
    truth = {key(m): image_to_array(m) > 0 for m in truth_c.messages}
    poses = {}
    for m in pose_c.messages:
        q = m.pose.orientation
        poses[key(m)] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    answers = {}
    for m in segs.messages:
        answers.setdefault(key(m), m)
    window = [s for s in stamps if s in answers]
    masks = {s: image_to_array(answers[s].mask) > 0 for s in window}
    iou_truth = {s: mask_iou(masks[s], truth[s]) for s in window}
    fresh = [s for s in window if not answers[s].tracked]
    tracked = [s for s in window if answers[s].tracked]
    fidelity = []
    for s in tracked:
        i, age = stamps.index(s), answers[s].tracked_age
        if i - age < 0 or stamps[i - age] not in masks:
            continue
        k = stamps[i - age]
        moved = cv2.warpPerspective(masks[k].astype(np.uint8),
                                    rotation_homography(K, poses[k], poses[s]), (W, H),
                                    flags=cv2.INTER_NEAREST) > 0
        fidelity.append(mask_iou(masks[s], moved))
    # IoU with the truth on every frame, holding the last mask where a frame got none
    held, last, per_frame = [], None, []
    for i, s in enumerate(stamps):
        if s in masks:
            last = masks[s]
        held.append(mask_iou(last, truth[s]) if last is not None else 0.0)
        a = answers.get(s)
        per_frame.append({"frame": i, "answer": None if a is None else
                          "tracker" if a.tracked else "model",
                          "age": a.tracked_age if a is not None else None,
                          "iou": round(iou_truth[s], 4) if s in iou_truth else None})
    return {
        "node_cpu_cores_used": round(cpu / wall, 3), "load_average": round(load, 2),
        "node_warnings": {k: log.count(k) for k in ("tracking lost", "dropped in the last",
                                                    "no tracking from this answer")},
        "tracking": tracking, "frames": len(stamps), "camera_seconds": seconds,
        "wall_seconds": seconds * args.time_scale,
        "frames_answered": len(window), "model_answers": len(fresh),
        "tracked_answers": len(tracked),
        "masks_per_camera_frame": round(len(window) / max(len(stamps), 1), 3),
        "masks_per_wall_second": round(len(window) / (seconds * args.time_scale), 2),
        "iou_truth_model_answers": summary(iou_truth[s] for s in fresh),
        "iou_truth_tracked": summary(iou_truth[s] for s in tracked),
        "iou_truth_every_frame_last_mask_held": summary(held),
        "iou_tracked_vs_moved_key_answer": summary(fidelity),
        "tracked_age": summary(answers[s].tracked_age for s in tracked),
        "model_inference_s": summary(answers[s].inference_time for s in fresh),
        "per_frame": per_frame,
    }


def section_graph(args, g: Graph) -> dict:
    """Measure the panning camera and the slow node, tracking on and off (``graph``)."""
    camera = g.start("refseg_node.sim.synthetic_camera", {
        "width": W, "height": H, "rate": RATE / args.time_scale, "qos": "reliable",
        "motion": "pan", "pan_amplitude": 4.0, "pan_period": 4.0 * args.time_scale,
        "publish_ground_truth": True}, "camera")

    wait_until(lambda: "pan: " in camera.log(), 180.0, "the camera's pan views")
    out = {"model_period_s": args.model_period, "time_scale": args.time_scale,
           "camera_rate_hz": RATE / args.time_scale,
           "min_inference_time_s": args.model_period * args.time_scale}
    for tracking in (True, False):
        out["tracking_on" if tracking else "model_only"] = run_pan(args, g, tracking,
                                                                   args.seconds)
    return out


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--section", choices=("all", "extent", "tracker", "replay", "graph"),
                   default="all")
    p.add_argument("--checkpoint", default="", help="checkpoint (default: the shipped one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model-period", type=float, default=1.0,
                   help="min_inference_time of the node: seconds a model answer takes at least")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of pan measured per run")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="graph: run the camera, the pan and the model this many times slower "
                        "(same frames per model answer, more CPU per frame on a loaded machine)")
    p.add_argument("--json", type=Path, help="write the report here too")
    p.add_argument("--figure", type=Path, help="replay: write the picture of the masks here")
    p.add_argument("--keep-logs", type=Path,
                   help="graph, extent: keep the processes' logs here (node at debug level)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the chosen sections and print the report."""
    args = parse_args(argv)
    report = {"machine": {"cpus": __import__("os").cpu_count()}, "args": {
        "checkpoint": args.checkpoint or "shipped default", "device": args.device,
        "model_period_s": args.model_period, "seconds": args.seconds,
        "time_scale": args.time_scale}}
    if args.section in ("all", "tracker"):
        report["tracker"] = section_tracker()
    if args.section in ("all", "replay"):
        report["replay"] = section_replay(args)
    if args.section in ("all", "extent"):
        report["extent_true_mask"] = section_extent_offline()
    if args.section in ("all", "extent", "graph"):
        with tempfile.TemporaryDirectory(prefix="grasp_measure_") as logs:
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
            g = Graph(args.keep_logs or Path(logs), debug=bool(args.keep_logs))
            try:
                if args.section in ("all", "extent"):
                    report["extent_node"] = section_extent_graph(args, g)
                if args.section in ("all", "graph"):
                    report["graph"] = section_graph(args, g)
            finally:
                g.close()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        atomic_write(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
