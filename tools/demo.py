"""``make demo``: the synthetic camera and the node on a real ROS 2 graph, one spoken command.

Starts ``synthetic_camera`` (the demo tabletop scene, RGB + aligned depth + CameraInfo) and
``refseg_node`` (the shipped default checkpoint, ``config/refseg.params.yaml``) as separate
processes on a private DDS domain, sends "pick up the red cup on the left" on ``/refseg/query``,
waits for the answer on ``/refseg/segmentation`` and ``/refseg/overlay``, writes the pictures to
``--out`` and prints the target's pixel centroid and 3D point.  It checks itself: the exit status
is non-zero unless the primary target overlaps the world's ground truth with IoU >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import String

from refseg_model.fileio import atomic_write, write_mask_png, write_png
from refseg_model.metrics import mask_iou
from refseg_model.synth import make_demo_scene
from refseg_msgs.msg import Segmentation
from refseg_node.ros_io.image_conversion import image_to_array

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:   # the process harness lives with the tests (tests/harness.py)
    sys.path.insert(0, str(REPO))

from tests.harness import (  # noqa: E402
    Graph,
    NodeProcess,
    WaitTimeout,
    adopt_env,
    isolated_ros_env,
    reliable_qos,
    wait_until,
)

COMMAND = 'pick up the red cup on the left'


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, default=Path('demo_out'), help='folder for the pictures')
    p.add_argument('--command', default=COMMAND, help='the spoken-style command to send')
    p.add_argument('--seed', type=int, default=0, help='seed of the demo scene')
    p.add_argument('--checkpoint', default='', help='checkpoint (default: the shipped one)')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--timeout', type=float, default=120.0, help='seconds to wait for an answer')
    p.add_argument('--min-iou', type=float, default=0.5, help='IoU with the ground truth to pass')
    return p.parse_args(argv)


def primary_component(mask: np.ndarray, bbox) -> np.ndarray:
    """Return the connected component of ``mask`` whose bounding box is the message's ``bbox``."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    want = (bbox.x_offset, bbox.y_offset, bbox.width, bbox.height)
    for i in range(1, n):
        if tuple(int(v) for v in stats[i, :4]) == want:
            return labels == i
    return mask  # the bbox names no single component: judge the whole mask


def run(args) -> int:
    """Run the demo; return the exit status."""
    out = args.out
    log_dir = out / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    env = isolated_ros_env(log_dir, domain_id=random.randint(101, 200))
    adopt_env(env)
    scene, _, region = make_demo_scene(seed=args.seed, width=640, height=480)
    node_args = ['--params-file', str(REPO / 'config' / 'refseg.params.yaml'),
                 '-p', f'device:={args.device}', '-p', 'image_qos:=reliable']
    if args.checkpoint:
        node_args += ['-p', f'checkpoint:={args.checkpoint}']
    starts = [('synthetic_camera', 'refseg_node.sim.synthetic_camera',
               ['-p', 'scene:=demo', '-p', f'seed:={args.seed}', '-p', 'rate:=10.0',
                '-p', 'qos:=reliable']),
              ('refseg_node', 'refseg_node.node', node_args)]
    procs = []
    for name, module, ros_args in starts:
        print(f'[demo] starting {name}: -m {module} --ros-args {" ".join(ros_args)}', flush=True)
        procs.append(NodeProcess(module, ros_args, env, log_dir / f'{name}.log'))
    graph = Graph('refseg_demo')
    try:
        segs = graph.collect(Segmentation, '/refseg/segmentation', reliable_qos(5))
        overlays = graph.collect(Image, '/refseg/overlay', reliable_qos(5))
        frames = graph.collect(Image, '/camera/image_raw', reliable_qos(5))
        print('[demo] waiting for the node to come up (loading the model)...', flush=True)

        def alive_and(predicate):
            def check():
                for p in procs:
                    p.check_alive()
                return predicate()
            return check
        query = graph.publisher(String, '/refseg/query', reliable_qos(5), subscribers=0)
        wait_until(alive_and(lambda: query.get_subscription_count() > 0), args.timeout,
                   'the node to subscribe to /refseg/query')
        print(f'[demo] sending the command: "{args.command}"', flush=True)
        query.publish(String(data=args.command))

        def stamp(msg):
            return (msg.header.stamp.sec, msg.header.stamp.nanosec)

        # The first answers can come before a depth frame is paired with a colour frame: wait
        # (up to 20 s) for an answer with its 3D point, then take any and say why it has none.
        want_3d_until = time.monotonic() + 20.0

        def answered():
            need_3d = time.monotonic() < want_3d_until
            for seg in segs.find(lambda m: m.command == args.command):
                if need_3d and not seg.has_3d:
                    continue
                overlay = overlays.find(lambda m, s=stamp(seg): stamp(m) == s)
                frame = frames.find(lambda m, s=stamp(seg): stamp(m) == s)
                if overlay and frame:
                    return seg, overlay[0], frame[0]
            return None
        try:
            seg, overlay, frame = wait_until(alive_and(answered), args.timeout, 'an answer')
        except WaitTimeout as err:
            raise RuntimeError(f'{err}; see {log_dir}/*.log') from None
        return report(args, out, seg, overlay, frame, region.mask)
    except AssertionError as err:  # a process exited (harness.ProcessExited)
        raise RuntimeError(f'{err}\nsee {log_dir}/*.log') from None
    finally:
        graph.close()
        for p in procs:
            p.stop(timeout=10)


def report(args, out, seg, overlay, frame, gt) -> int:
    """Write the pictures and the JSON summary, print the result, return the exit status."""
    rgb = image_to_array(frame)
    mask = image_to_array(seg.mask) > 0
    target = primary_component(mask, seg.bbox) if seg.found else np.zeros_like(mask)
    score = mask_iou(target, gt)
    write_png(out / 'input.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    write_mask_png(out / 'mask.png', mask)
    write_png(out / 'overlay.png', image_to_array(overlay))
    write_mask_png(out / 'ground_truth.png', gt)
    point = seg.target_point.point if seg.has_3d else None
    summary = {
        'command': seg.command, 'expression': seg.expression, 'found': bool(seg.found),
        'score': round(float(seg.score), 4),
        'centroid_px': [round(seg.centroid.x, 1), round(seg.centroid.y, 1)],
        'target_point_m': [round(point.x, 3), round(point.y, 3), round(point.z, 3)]
        if point else None,
        'frame_id': seg.target_point.header.frame_id if point else seg.header.frame_id,
        'area_px': int(seg.area), 'iou_with_ground_truth': round(score, 4),
    }
    atomic_write(out / 'result.json', json.dumps(summary, indent=2) + '\n')
    print(f'[demo] command      : {seg.command}')
    print(f'[demo] expression   : {seg.expression}')
    print(f'[demo] found        : {seg.found} (score {seg.score:.2f}, {seg.area} px)')
    print(f'[demo] centroid     : column {seg.centroid.x:.1f}, row {seg.centroid.y:.1f} (pixels)')
    if point:
        print(f'[demo] 3D point     : x {point.x:.3f} y {point.y:.3f} z {point.z:.3f} m '
              f'({summary["frame_id"]})')
    else:
        why = getattr(seg, 'no_3d_reason', '') or 'no valid depth at the target'
        print(f'[demo] 3D point     : none ({why})')
    print(f'[demo] IoU with the ground truth: {score:.3f} (needs >= {args.min_iou})')
    print(f'[demo] pictures in {out}/: input.png mask.png overlay.png ground_truth.png')
    if score < args.min_iou:
        print('[demo] FAILED: the target found does not match the ground truth', file=sys.stderr)
        return 1
    print('[demo] OK')
    return 0


def main(argv=None) -> int:
    """Entry point of ``make demo``."""
    args = parse_args(argv)
    try:
        return run(args)
    except (RuntimeError, FileNotFoundError) as exc:
        print(f'[demo] FAILED: {exc}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
