"""The target's points (/refseg/target_cloud) and 3D extent, from the node in a real graph.

The test publishes the synthetic demo frame (RGB, 16UC1 depth in millimetres, CameraInfo) and
asks for the red cup on the left. Two nodes run one after the other:

- the shipped default model: whatever mask it gives, the cloud must be that mask's points with
  valid depth, in metres, where the depth image says, and (erosion and the depth outlier test
  doing their job) on the true cup only; the Segmentation's extent must be the cloud's;
- the ``everything`` checkpoint (its mask is the whole picture) on a crop of the frame around
  the cup (intrinsics shifted to match) whose depth holds the cup only: the points are then all
  of the cup's visible surface, and the extent must match the cup's true size (see
  ``test_extent_matches_the_cups_true_size`` for the tolerance).
"""

import itertools

import numpy as np
import pytest

from tests.ros_graph import publish_acked, rgbd_io, wait_active

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H = 640, 480
STAMPS = itertools.count(7000)
DEPTH_STEP = 0.0005     # half a millimetre: the rounding of a 16UC1 depth image


@pytest.fixture(scope="module")
def demo():
    from refseg_model.synth import make_demo_scene

    scene, command, region = make_demo_scene(0, W, H)
    return scene, command, region


@pytest.fixture(scope="module")
def io(graph):
    from sensor_msgs.msg import PointCloud2
    from visualization_msgs.msg import Marker

    from refseg_msgs.msg import Segmentation

    return rgbd_io(graph, segmentation=(Segmentation, "/refseg/segmentation"),
                   cloud=(PointCloud2, "/refseg/target_cloud"), marker=(Marker, "/refseg/marker"))


def send_frame(io, rgb, depth_m, k, command):
    """Publish query, depth, camera_info and image with one stamp; return the Segmentation."""
    from std_msgs.msg import Header, String

    from refseg_node.ros_io.image_conversion import depth16_msg, rgb8_msg
    from refseg_node.sim.synthetic_camera import camera_info_msg

    for _ in range(5):
        sec = next(STAMPS)
        header = Header(frame_id="camera_color_optical_frame")
        header.stamp.sec = sec
        publish_acked(io.query, String(data=command))
        publish_acked(io.depth, depth16_msg(depth_m, header))
        height, width = depth_m.shape
        publish_acked(io.info, camera_info_msg(k, width, height, header))
        publish_acked(io.image, rgb8_msg(rgb, header))
        try:
            return io.segmentation.wait_for(lambda m, s=sec: m.header.stamp.sec == s, 30.0)
        except AssertionError:
            continue
    pytest.fail("no segmentation for 5 frames")


def cloud_of(io, seg):
    from refseg_node.ros_io.pointcloud2 import cloud_to_arrays

    msg = io.cloud.wait_for(lambda m: m.header.stamp == seg.header.stamp, what="the cloud")
    assert msg.header.frame_id == "camera_color_optical_frame"
    return cloud_to_arrays(msg)


def pixels(xyz, k):
    u = np.rint(xyz[:, 0] * k[0, 0] / xyz[:, 2] + k[0, 2]).astype(int)
    v = np.rint(xyz[:, 1] * k[1, 1] / xyz[:, 2] + k[1, 2]).astype(int)
    return u, v


def test_cloud_is_the_masks_points_on_the_true_cup(start_node, graph, io, demo, request):
    from refseg_model.synth.motion import inside_true_box
    from refseg_node.perception.cloud import extent
    from refseg_node.ros_io.image_conversion import image_to_array

    scene, command, region = demo
    node = start_node({"device": "cpu", "image_qos": "reliable", "log_period": 0.0},
                      name="shipped_model")
    request.addfinalizer(node.stop)  # never left answering the next test's frames
    wait_active(graph, node)
    seg = send_frame(io, scene.rgb, scene.depth_m, scene.K, command)
    assert seg.found and seg.has_3d and seg.has_extent and not seg.tracked, seg.no_3d_reason
    xyz, rgb = cloud_of(io, seg)
    assert len(xyz) == seg.num_points >= 30
    mask = image_to_array(seg.mask) > 0
    u, v = pixels(xyz, scene.K)
    assert mask[v, u].all()                              # the node's own mask ...
    on_cup = region.mask[v, u].mean()                    # ... and (nearly) on the true cup only:
    # A mask that spills past the eroded rim fails this; one that keeps a few table points at
    # cup depth passes. Measured on the demo scene: 0.983 with the sixth period's weights at
    # their calibrated threshold 0.55 (bf16 path, 2026-12-02), 0.968 with the fifth's at 0.50,
    # 0.97 and more with the fourth's at 0.70.
    assert on_cup >= 0.95, on_cup
    exact = scene.depth_m[v, u]
    assert np.abs(xyz[:, 2] - exact).max() <= DEPTH_STEP + 1e-6     # metres, within the rounding
    np.testing.assert_array_equal(rgb, scene.rgb[v, u])  # colours of their pixels
    # the Segmentation's extent is the extent of the published points, its size across the view
    # grown by what the erosion took off: 2 px a side, more on thin parts (the handle)
    e = extent(xyz)
    c, size = seg.center_3d, seg.size_3d
    assert (c.x, c.y, c.z) == pytest.approx(e.center, abs=1e-6)
    assert size.z == pytest.approx(e.size[2], abs=1e-6)
    pixel_m = c.z / scene.K[0, 0], c.z / scene.K[1, 1]
    for grown, own, metres in ((size.x, e.size[0], pixel_m[0]), (size.y, e.size[1], pixel_m[1])):
        assert 2 * metres <= grown - own <= 8 * metres
    axes = np.array([[a.x, a.y, a.z] for a in seg.principal_axes])
    np.testing.assert_allclose(np.abs(np.sum(axes * e.axes, axis=1)), 1.0, atol=1e-5)
    assert inside_true_box(scene, 1, (c.x, c.y, c.z))
    assert node.stop() == 0


def test_extent_matches_the_cups_true_size(start_node, graph, io, demo, checkpoints):
    """The true size: the span of the cup's visible surface, traced finer than the pixels.

    The percentile span (2nd..98th, divided by 0.96 for a uniform spread) still loses the thin
    handle's few points. The depth, not the mask, bounds the cup here (the mask is the whole
    picture), so the erosion takes nothing off the cup and nothing is added back: the measured
    width and height must lie between 85 % and 100 % of the truth (+ 1 mm of depth rounding);
    measured here: 97 %, 94 %.
    """
    from scipy.spatial.transform import Rotation

    from refseg_model.synth.motion import inside_true_box, visible_surface

    scene, command, region = demo
    node = start_node({"checkpoint": checkpoints["everything"], "device": "cpu",
                       "image_qos": "reliable", "log_period": 0.0}, name="everything")
    wait_active(graph, node)
    # A crop around the cup (the cup is 40 % of it: enough for a 3D point of the whole picture)
    rows, cols = np.nonzero(region.mask)
    y0, y1, x0, x1 = rows.min() - 10, rows.max() + 11, cols.min() - 10, cols.max() + 11
    k = scene.K.copy()
    k[0, 2] -= x0
    k[1, 2] -= y0
    cup = region.mask[y0:y1, x0:x1]
    cup_only = np.where(cup, scene.depth_m[y0:y1, x0:x1], 0.0).astype(np.float32)
    rgb = np.ascontiguousarray(scene.rgb[y0:y1, x0:x1])
    seg = send_frame(io, rgb, cup_only, k, command)
    assert seg.found and seg.has_extent and seg.area == cup.size, seg.no_3d_reason
    xyz, _ = cloud_of(io, seg)
    u, v = pixels(xyz, k)
    assert cup[v, u].all() and seg.num_points > 0.95 * cup.sum()
    truth = np.ptp(visible_surface(scene, 1), axis=0)
    size = np.array([seg.size_3d.x, seg.size_3d.y, seg.size_3d.z])
    assert np.all(size[:2] >= 0.85 * truth[:2]) and np.all(size[:2] <= truth[:2] + 0.001)
    assert inside_true_box(scene, 1, (seg.center_3d.x, seg.center_3d.y, seg.center_3d.z))
    box = io.marker.wait_for(lambda m: m.header.stamp == seg.header.stamp and m.id == 1)
    axes = io.marker.wait_for(lambda m: m.header.stamp == seg.header.stamp and m.id == 2)
    assert box.type == box.CUBE and axes.type == axes.LINE_LIST and len(axes.points) == 6
    assert (box.scale.x, box.scale.y, box.scale.z) == pytest.approx(seg.principal_sizes,
                                                                    abs=1e-6)
    q = box.pose.orientation
    first_axis = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()[:, 0]
    a = seg.principal_axes[0]
    assert first_axis @ [a.x, a.y, a.z] == pytest.approx(1.0, abs=1e-5)
    # no valid depth on the target: no extent, and the reason says why; the box is removed
    seg = send_frame(io, rgb, np.zeros(cup.shape, np.float32), k, command)
    assert seg.found and not seg.has_3d and not seg.has_extent and "depth" in seg.no_3d_reason
    box = io.marker.wait_for(lambda m: m.header.stamp == seg.header.stamp and m.id == 1)
    assert box.action == box.DELETE
    assert node.stop() == 0
