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
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from refseg_model.fileio import atomic_write, write_mask_png, write_png
from refseg_model.metrics import mask_iou

REPO = Path(__file__).resolve().parents[1]
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


def ros_env(log_dir: Path) -> dict[str, str]:
    """Environment that keeps the demo's DDS traffic on this host, on a domain of its own."""
    env = dict(os.environ)
    env.setdefault('ROS_DOMAIN_ID', str(random.randint(101, 200)))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    env['ROS_LOG_DIR'] = str(log_dir)
    env['PYTHONUNBUFFERED'] = '1'
    return env


def start(name: str, module: str, ros_args: list[str], env, log_dir: Path) -> subprocess.Popen:
    """Start ``python -m module --ros-args ...`` with its output in ``log_dir/name.log``."""
    log = open(log_dir / f'{name}.log', 'w')
    cmd = [sys.executable, '-m', module, '--ros-args', *ros_args]
    print(f'[demo] starting {name}: {" ".join(cmd[1:])}', flush=True)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def stop(procs: list[subprocess.Popen]) -> None:
    """Interrupt the processes (as Ctrl-C would), then kill what is left."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(2)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


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
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from refseg_model.synth import make_demo_scene
    from refseg_msgs.msg import Segmentation
    from refseg_node.image_conversion import image_to_array

    out = args.out
    log_dir = out / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    env = ros_env(log_dir)
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                           'FASTDDS_BUILTIN_TRANSPORTS', 'ROS_LOG_DIR')})
    scene, _, region = make_demo_scene(seed=args.seed, width=640, height=480)
    node_args = ['--params-file', str(REPO / 'config' / 'refseg.params.yaml'),
                 '-p', f'device:={args.device}', '-p', 'image_qos:=reliable']
    if args.checkpoint:
        node_args += ['-p', f'checkpoint:={args.checkpoint}']
    procs = [
        start('synthetic_camera', 'refseg_node.synthetic_camera',
              ['-p', 'scene:=demo', '-p', f'seed:={args.seed}', '-p', 'rate:=10.0',
               '-p', 'qos:=reliable'], env, log_dir),
        start('refseg_node', 'refseg_node.node', node_args, env, log_dir),
    ]
    rclpy.init()
    node = rclpy.create_node('refseg_demo')
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    got: dict[str, object] = {}
    frames: dict[tuple[int, int], object] = {}

    def on_seg(msg):
        if msg.command == args.command and 'seg' not in got:
            got['seg'] = msg

    def stamp(msg):
        return (msg.header.stamp.sec, msg.header.stamp.nanosec)

    node.create_subscription(Segmentation, '/refseg/segmentation', on_seg, reliable)
    node.create_subscription(Image, '/refseg/overlay',
                             lambda m: got.setdefault(('overlay',) + stamp(m), m), reliable)
    node.create_subscription(Image, '/camera/image_raw',
                             lambda m: frames.setdefault(stamp(m), m), reliable)
    query = node.create_publisher(String, '/refseg/query', reliable)
    try:
        deadline = time.monotonic() + args.timeout
        print('[demo] waiting for the node to come up (loading the model)...', flush=True)
        while time.monotonic() < deadline and query.get_subscription_count() == 0:
            rclpy.spin_once(node, timeout_sec=0.1)
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f'a process exited early; see {log_dir}/*.log')
        print(f'[demo] sending the command: "{args.command}"', flush=True)
        query.publish(String(data=args.command))
        overlay = None
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            seg = got.get('seg')
            if seg is not None:
                overlay = got.get(('overlay',) + stamp(seg))
                if overlay is not None and stamp(seg) in frames:
                    break
        else:
            raise RuntimeError(f'no answer within {args.timeout:.0f} s; see {log_dir}/*.log')
        return report(args, out, seg, overlay, frames[stamp(seg)], region.mask, image_to_array)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(procs)


def report(args, out, seg, overlay, frame, gt, image_to_array) -> int:
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
        print('[demo] 3D point     : none (no valid depth at the target)')
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
