"""A mask for every frame while the model is slow: the node's tracker over a camera pan.

``synthetic_camera`` pans over the demo scene (+-4 degrees, a sweep every 4 s, 10 Hz, 640x480)
and publishes each frame's true target mask and camera pose; the node runs the shipped model
held to one answer a second (``min_inference_time``, the testing aid for a slow model). The
camera only turns, so the true motion of any mask between two frames is the homography of the
rotation: a tracked mask is checked against the model's answer moved by it (what tracking can
do whatever the model's quality), and against the true cup relative to the model's own answer.
"""

import cv2
import numpy as np
import pytest

from tests.ros_graph import wait_active, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H, RATE = 640, 480, 10.0
WINDOW = 40          # frames (4 s: one sweep there and back)


def stamp_of(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def iou(a, b):
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def rotation_of(pose):
    from scipy.spatial.transform import Rotation

    q = pose.pose.orientation
    return Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()


@pytest.fixture(scope="module")
def pan(start_node, graph):
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from refseg_msgs.msg import Segmentation

    class IO:
        segmentation = graph.collect(Segmentation, "/refseg/segmentation")
        truth = graph.collect(Image, "/synthetic_camera/target_mask")
        pose = graph.collect(PoseStamped, "/synthetic_camera/camera_pose")

    IO.camera = start_node({"width": W, "height": H, "rate": RATE, "qos": "reliable",
                            "motion": "pan", "pan_amplitude": 4.0, "pan_period": 4.0,
                            "publish_ground_truth": True},
                           module="refseg_node.sim.synthetic_camera", name="pan_camera")
    IO.node = start_node({"device": "cpu", "image_qos": "reliable", "log_period": 0.0,
                          "min_inference_time": 1.0}, name="slow_model")
    wait_active(graph, IO.node)
    query = graph.publisher(String, "/refseg/query")
    query.publish(String(data="pick up the red cup on the left"))
    IO.segmentation.wait_for(lambda m: not m.tracked and m.found, timeout=120.0,
                             what="the model's first answer")
    return IO


def answers_over_window(io, every_frame=True):
    """Return the window's frame stamps (in order) and the answers to them.

    With ``every_frame``, wait until an answer to the window's last frame or a later one has
    come; else wait 1.5 s more (a slow model's answer to the window's last frame comes by then).
    """
    from refseg_node.ros_io.image_conversion import image_to_array

    io.segmentation.clear()
    io.truth.clear()
    io.pose.clear()
    extra = 5 if every_frame else 15
    wait_until(lambda: io.truth.count() >= WINDOW + extra, 120.0, "the window's camera frames")
    stamps = [stamp_of(m) for m in io.truth.messages][:WINDOW]
    if every_frame:   # the answer to the window's last frame (model or tracker) has come
        wait_until(lambda: any(stamp_of(m) >= stamps[-1] for m in io.segmentation.messages),
                   30.0, "answers after the window")
    by_stamp = {}
    for m in io.segmentation.messages:
        by_stamp.setdefault(stamp_of(m), []).append(m)
    truth = {stamp_of(m): image_to_array(m) > 0 for m in io.truth.messages}
    poses = {stamp_of(m): rotation_of(m) for m in io.pose.messages}
    return stamps, by_stamp, truth, poses


def test_tracked_masks_fill_the_frames_and_follow_the_pan(pan):
    from refseg_model.synth import make_demo_scene
    from refseg_model.synth.motion import rotation_homography
    from refseg_node.ros_io.image_conversion import image_to_array

    K = make_demo_scene(0, W, H)[0].K
    stamps, by_stamp, truth, poses = answers_over_window(pan)
    answered = [s for s in stamps if s in by_stamp]
    assert all(len(by_stamp[s]) == 1 for s in answered)      # one answer a frame at most
    fresh = [s for s in answered if not by_stamp[s][0].tracked]
    tracked = [s for s in answered if by_stamp[s][0].tracked]
    # The model answers about 1 frame in 10 and the tracker the others on an idle machine; a
    # loaded one (2 cores shared with other jobs: a tracker step took up to 1 s) skips frames
    # while a step runs. So the test asks for tracked masks and checks each one's quality; the
    # share of frames answered is measured by tools/grasp_measure.py (docs/RESULTS.md).
    assert 1 <= len(fresh) <= 8 and len(tracked) >= 1
    checked = 0
    for s in tracked:
        seg = by_stamp[s][0]
        index = stamps.index(s)
        assert seg.tracked_age >= 1 and seg.inference_time == 0.0
        if index - seg.tracked_age < 0:
            continue                                         # its key frame is before the window
        key_stamp = stamps[index - seg.tracked_age]
        key = by_stamp.get(key_stamp, [None])[0]
        assert key is not None and not key.tracked and key.tracked_age == 0
        key_mask = image_to_array(key.mask) > 0
        moved = cv2.warpPerspective(key_mask.astype(np.uint8),
                                    rotation_homography(K, poses[key_stamp], poses[s]), (W, H),
                                    flags=cv2.INTER_NEAREST) > 0
        mask = image_to_array(seg.mask) > 0
        # LK + RANSAC drift grows with the chain of frames since the key frame
        bound = 0.8 if seg.tracked_age <= 10 else 0.7
        assert iou(mask, moved) >= bound, (seg.tracked_age, iou(mask, moved))
        assert iou(mask, truth[s]) >= iou(key_mask, truth[key_stamp]) - 0.1
        checked += 1
    assert checked >= 1


def test_without_tracking_only_the_models_answers_come(pan, graph):
    assert graph.set_parameter("tracking", False).successful
    stamps, by_stamp, _, _ = answers_over_window(pan, every_frame=False)
    answers = [m for s in stamps for m in by_stamp.get(s, [])]
    assert answers and not any(m.tracked for m in answers)
    assert len(answers) <= 8                                  # ~1 a second, 40 frames
    pan.node.check_alive()
