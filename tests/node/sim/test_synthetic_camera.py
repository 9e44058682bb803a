"""The synthetic camera as a process: the world's frames, a replayed folder, and bad sources."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.ros_graph import REPO, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H = 96, 72


@pytest.fixture(scope="module")
def camera_io(graph):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    class IO:
        image = graph.collect(Image, "/camera/image_raw", qos_profile_sensor_data)
        depth = graph.collect(Image, "/camera/depth/image_raw", qos_profile_sensor_data)
        info = graph.collect(CameraInfo, "/camera/camera_info", qos_profile_sensor_data)
    return IO


def test_demo_scene_rgb_depth_and_camera_info(start_node, camera_io):
    from refseg_model.synth import make_demo_scene
    from refseg_node.ros_io.image_conversion import depth_to_metres, image_to_array

    proc = start_node({"width": W, "height": H, "rate": 20.0, "seed": 0},
                      module="refseg_node.sim.synthetic_camera", name="camera")
    image = camera_io.image.wait_for(timeout=120.0)
    stamp = image.header.stamp
    depth = camera_io.depth.wait_for(lambda m: m.header.stamp == stamp)
    info = camera_io.info.wait_for(lambda m: m.header.stamp == stamp)
    scene, command, region = make_demo_scene(0, W, H)
    assert image.encoding == "rgb8" and image.header.frame_id == "camera_color_optical_frame"
    np.testing.assert_array_equal(image_to_array(image), scene.rgb)
    assert depth.encoding == "16UC1" and (depth.width, depth.height) == (W, H)
    metres = depth_to_metres(depth)
    valid = scene.depth_m > 0
    np.testing.assert_allclose(metres[valid], scene.depth_m[valid], atol=0.0006)
    assert np.isnan(metres[~valid]).all()
    np.testing.assert_allclose(info.k, np.asarray(scene.K).ravel())
    assert (info.width, info.height) == (W, H)
    wait_until(lambda: len(camera_io.image.messages) >= 3, what="a stream of frames")
    assert proc.stop() == 0
    # Ctrl-C shuts the context down before the last line: it goes to the console, not /rosout.
    assert "published" in proc.log()
    assert "Failed to publish log message to rosout" not in proc.log()


def test_replays_a_folder_of_images_in_order(start_node, camera_io, tmp_path):
    from refseg_node.ros_io.image_conversion import image_to_array

    pictures = [np.full((H, W, 3), (40 * i, 255 - 40 * i, 7), np.uint8) for i in range(3)]
    for i, rgb in enumerate(pictures):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), rgb[:, :, ::-1])
    (tmp_path / "notes.txt").write_text("not an image")
    camera_io.image.clear()
    proc = start_node({"source": str(tmp_path), "rate": 20.0, "qos": "reliable"},
                      module="refseg_node.sim.synthetic_camera", name="replay")
    wait_until(lambda: len(camera_io.image.messages) >= 6, 120.0, "replayed frames")
    assert proc.stop() == 0
    got = [image_to_array(m) for m in camera_io.image.messages]
    order = [next(i for i, p in enumerate(pictures) if np.array_equal(g, p)) for g in got]
    assert all(b == (a + 1) % 3 for a, b in zip(order, order[1:])), order  # looping, in order
    once = start_node({"source": str(tmp_path), "rate": 50.0, "loop": False},
                      module="refseg_node.sim.synthetic_camera", name="replay_once")
    once.wait_log("end of the source after 3 frames", timeout=120.0)
    assert once.stop() == 0


def test_bad_source_exits_with_a_message(ros_env, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "refseg_node.sim.synthetic_camera", "--ros-args",
         "-p", f"source:={tmp_path / 'missing.mp4'}"],
        env=ros_env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "neither a folder of images nor a video file" in result.stderr


def test_camera_to_node_end_to_end_with_best_effort_frames(start_node, graph, checkpoints):
    """Synthetic camera (best effort) -> node (sensor data QoS) -> 3D point of the target."""
    from std_msgs.msg import String

    from refseg_model.synth import make_demo_scene
    from refseg_msgs.msg import Segmentation
    from refseg_node.perception.geometry import Intrinsics, target_point
    from tests.ros_graph import wait_active

    segs = graph.collect(Segmentation, "/refseg/segmentation")
    start_node({"width": W, "height": H, "rate": 10.0}, module="refseg_node.sim.synthetic_camera",
               name="camera_e2e")
    node = start_node({"checkpoint": checkpoints["everything"], "device": "cpu"}, name="e2e")
    wait_active(graph, node)
    query = graph.publisher(String, "/refseg/query")
    query.publish(String(data="pick up the red cup on the left"))
    seg = segs.wait_for(lambda m: m.has_3d, timeout=120.0, what="a segmentation with 3D")
    assert seg.expression == "the red cup on the left" and seg.found
    assert seg.header.frame_id == "camera_color_optical_frame"
    scene, _, _ = make_demo_scene(0, W, H)
    k = Intrinsics.from_k(np.asarray(scene.K).ravel(), W, H)
    depth = np.where(scene.depth_m > 0, np.round(scene.depth_m * 1000) / 1000, np.nan)
    expected = target_point(depth, np.ones((H, W), bool), k).point
    p = seg.target_point.point
    assert (p.x, p.y, p.z) == pytest.approx(expected, abs=1e-3)
