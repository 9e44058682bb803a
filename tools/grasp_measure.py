"""Measure the grasp-ready outputs of issue 14: the target's 3D extent and tracking over a pan.

Sections (``--section``, default all):

- ``extent``: the demo scene (640x480). (a) ``refseg_node.cloud`` on the true mask of the red cup
  on the left with the frame's 16UC1 depth: is the robust 3D centre inside the cup's true box,
  and how do width and height (camera x and y) compare with the span of the cup's visible
  surface; (b) the same through the node in a real graph with ``--checkpoint``: the model's
  mask, the Segmentation's extent and the share of /refseg/target_cloud points on the true cup.
- ``tracker``: ``refseg_node.tracking`` alone over one 2-second sweep of the panning camera
  (10 Hz, +-4 degrees), key frame the true mask (the tracker as if the model were perfect), and
  with a key frame every 10 frames (a model answering once a second).
- ``graph``: ``synthetic_camera motion:=pan`` -> the node with ``min_inference_time`` (a model
  that answers once a second), tracking on and off: frames answered, masks per second, IoU of
  each mask with the true cup and of each tracked mask with its key answer moved by the true
  motion (the camera only turns, so that motion is the homography of the rotation).

Prints a JSON report (and writes it with ``--json``). Example::

    python tools/grasp_measure.py --json grasp.json
"""

from __future__ import annotations

import argparse
import json
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

from refseg_model.fileio import atomic_write
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
from refseg_node.cloud import target_geometry
from refseg_node.geometry import Intrinsics
from refseg_node.harness import Graph as HarnessGraph
from refseg_node.harness import (
    NodeProcess,
    adopt_env,
    isolated_ros_env,
    node_args,
    publish_acked,
    wait_active,
    wait_until,
)
from refseg_node.image_conversion import depth16_msg, image_to_array, rgb8_msg
from refseg_node.pointcloud2 import cloud_to_arrays
from refseg_node.synthetic_camera import camera_info_msg
from refseg_node.tracking import MaskTracker, to_gray

REPO = Path(__file__).resolve().parents[1]
W, H, RATE = 640, 480, 10.0
COMMAND = "pick up the red cup on the left"


def millimetres(depth_m: np.ndarray) -> np.ndarray:
    """Return the depth as a 16UC1 camera sends it, in metres (NaN where there is none)."""
    mm = np.round(depth_m * 1000.0)
    return np.where(mm > 0, mm / 1000.0, np.nan)


def summary(values) -> dict:
    """Return min, mean and max of ``values`` (rounded), and their count."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "min": round(float(v.min()), 4), "mean": round(float(v.mean()), 4),
            "max": round(float(v.max()), 4)}


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
    """Measure ``refseg_node.cloud`` on the true mask (part a of ``extent``)."""
    scene, _, region = make_demo_scene(0, W, H)
    k = Intrinsics.from_k(scene.K.ravel(), W, H)
    geometry = target_geometry(millimetres(scene.depth_m), region.mask, k, scene.rgb)
    out = judge_extent(scene, geometry.extent.center, geometry.extent.size)
    out["num_points"] = geometry.extent.num_points
    out["mask"] = "ground truth"
    return out


class Graph:
    """The harness's graph with a camera and the node started on a private domain."""

    def __init__(self, log_dir: Path):
        """Start rclpy on a private domain."""
        self.env = isolated_ros_env(log_dir, domain_id=random.randint(101, 200))
        adopt_env(self.env)
        self.graph = HarnessGraph("grasp_measure")
        self.log_dir = log_dir
        self.processes = []

    def start(self, module: str, params: dict, name: str):
        """Start ``module`` with ``params``; return its process."""
        proc = NodeProcess(module, node_args(params), self.env, self.log_dir / f"{name}.log")
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


def run_pan(args, g: Graph, tracking: bool, seconds: float) -> dict:
    """Run camera -> slow node once; return frame-by-frame figures."""
    K = make_demo_scene(0, W, H)[0].K
    segs = g.graph.collect(Segmentation, "/refseg/segmentation")
    truth_c = g.graph.collect(Image, "/synthetic_camera/target_mask")
    pose_c = g.graph.collect(PoseStamped, "/synthetic_camera/camera_pose")
    node = g.start("refseg_node.node", node_params(
        args, min_inference_time=args.model_period, tracking=tracking),
        f"node_pan_{'tracking' if tracking else 'model_only'}")
    wait_active(g.graph, node)
    query = g.graph.publisher(String, "/refseg/query")
    query.publish(String(data=COMMAND))
    segs.wait_for(lambda m: m.found and not m.tracked, 180.0, "the model's first answer")
    for c in (segs, truth_c, pose_c):
        c.clear()
    frames = int(seconds * RATE)
    wait_until(lambda: truth_c.count() >= frames + 15, seconds + 60, "the camera's frames")
    node.stop()

    def key(m):
        return m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec

    stamps = [key(m) for m in truth_c.messages][:frames]
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
    held, last = [], None
    for s in stamps:
        if s in masks:
            last = masks[s]
        held.append(mask_iou(last, truth[s]) if last is not None else 0.0)
    return {
        "tracking": tracking, "frames": len(stamps), "seconds": seconds,
        "frames_answered": len(window), "model_answers": len(fresh),
        "tracked_answers": len(tracked),
        "masks_per_second": round(len(window) / seconds, 2),
        "iou_truth_model_answers": summary(iou_truth[s] for s in fresh),
        "iou_truth_tracked": summary(iou_truth[s] for s in tracked),
        "iou_truth_every_frame_last_mask_held": summary(held),
        "iou_tracked_vs_moved_key_answer": summary(fidelity),
        "tracked_age": summary(answers[s].tracked_age for s in tracked),
    }


def section_graph(args, g: Graph) -> dict:
    """Measure the panning camera and the slow node, tracking on and off (``graph``)."""
    camera = g.start("refseg_node.synthetic_camera", {
        "width": W, "height": H, "rate": RATE, "qos": "reliable", "motion": "pan",
        "pan_amplitude": 4.0, "pan_period": 4.0, "publish_ground_truth": True}, "camera")

    wait_until(lambda: "pan: " in camera.log(), 180.0, "the camera's pan views")
    out = {"model_period_s": args.model_period}
    for tracking in (True, False):
        out["tracking_on" if tracking else "model_only"] = run_pan(args, g, tracking,
                                                                   args.seconds)
    return out


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--section", choices=("all", "extent", "tracker", "graph"), default="all")
    p.add_argument("--checkpoint", default="", help="checkpoint (default: the shipped one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model-period", type=float, default=1.0,
                   help="min_inference_time of the node: seconds a model answer takes at least")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of pan measured per run")
    p.add_argument("--json", type=Path, help="write the report here too")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the chosen sections and print the report."""
    args = parse_args(argv)
    report = {"machine": {"cpus": __import__("os").cpu_count()}, "args": {
        "checkpoint": args.checkpoint or "shipped default", "device": args.device,
        "model_period_s": args.model_period, "seconds": args.seconds}}
    if args.section in ("all", "tracker"):
        report["tracker"] = section_tracker()
    if args.section in ("all", "extent"):
        report["extent_true_mask"] = section_extent_offline()
    if args.section in ("all", "extent", "graph"):
        with tempfile.TemporaryDirectory(prefix="grasp_measure_") as logs:
            g = Graph(Path(logs))
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
