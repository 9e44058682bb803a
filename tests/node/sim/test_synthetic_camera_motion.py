"""The synthetic camera's pan mode and its ground-truth topics, as a process over a real graph."""

import subprocess
import sys

import numpy as np
import pytest

from tests.ros_graph import REPO, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H = 96, 72


def test_pan_frames_with_their_true_masks_and_poses(start_node, graph):
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data
    from scipy.spatial.transform import Rotation
    from sensor_msgs.msg import Image

    from refseg_model.synth import make_demo_scene
    from refseg_model.synth.motion import pan_offsets, render_view
    from refseg_node.ros_io.image_conversion import image_to_array

    images = graph.collect(Image, "/camera/image_raw", qos_profile_sensor_data)
    masks = graph.collect(Image, "/synthetic_camera/target_mask")
    poses = graph.collect(PoseStamped, "/synthetic_camera/camera_pose")
    proc = start_node({"width": W, "height": H, "rate": 20.0, "motion": "pan",
                       "pan_amplitude": 6.0, "pan_period": 1.0, "publish_ground_truth": True},
                      module="refseg_node.sim.synthetic_camera", name="pan_camera")
    wait_until(lambda: len(images.messages) >= 12, 120.0, "a stream of panning frames")
    assert proc.stop() == 0
    assert "pan: +-6.0 degrees every 1.0 s, 20 frames" in proc.log()

    scene = make_demo_scene(0, W, H)[0]
    angles = pan_offsets(6.0, 1.0, 20.0)
    views = [render_view(scene, a, noise_seed=i) for i, a in enumerate(angles)]
    by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in masks.messages}
    pose_by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in poses.messages}
    seen = set()
    for msg in images.messages:
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        rgb = image_to_array(msg)
        index = next((i for i, v in enumerate(views) if np.array_equal(v.rgb, rgb)), None)
        assert index is not None, "a frame that is no view of the pan"
        seen.add(round(angles[index], 6))
        truth = by_stamp[stamp]            # published before the frame, with its stamp
        np.testing.assert_array_equal(image_to_array(truth) > 0,
                                      views[index].object_mask(1))
        pose = pose_by_stamp[stamp]
        assert pose.header.frame_id == "synthetic_world"
        q = pose.pose.orientation
        np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(),
                                   views[index].camera.R, atol=1e-9)
        assert pose.pose.position.z == pytest.approx(views[index].camera.C[2])
    assert len(seen) >= 5                  # the camera did move


def test_bad_motion_settings_exit_with_a_message(ros_env):
    for args, text in ((["-p", "motion:=shake"], "motion must be one of none, pan"),
                       (["-p", "scene:=random", "-p", "publish_ground_truth:=true"],
                        "publish_ground_truth needs scene:=demo")):
        result = subprocess.run(
            [sys.executable, "-m", "refseg_node.sim.synthetic_camera", "--ros-args", *args],
            env=ros_env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and text in result.stderr
