"""The output messages of a FrameResult: Segmentation, markers, target cloud (no graph)."""

import numpy as np
import pytest
from std_msgs.msg import Header

from refseg_node.perception.cloud import TargetGeometry, TargetPoints, extent
from refseg_node.perception.pipeline import FrameResult
from refseg_node.perception.targets import primary_target
from refseg_node.ros_io.messages import (
    extent_markers,
    segmentation_msg,
    target_cloud_msg,
)
from refseg_node.ros_io.pointcloud2 import cloud_to_arrays


@pytest.fixture(scope="module")
def box_extent():
    rng = np.random.default_rng(0)
    local = rng.uniform(-0.5, 0.5, (5000, 3)) * [0.2, 0.1, 0.05]
    angle = np.radians(40)
    rotation = np.array([[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0],
                         [-np.sin(angle), 0.0, np.cos(angle)]])
    return extent(local @ rotation.T + [0.1, 0.0, 1.0]), rotation


def frame_result(**fields) -> FrameResult:
    mask = np.zeros((12, 16), bool)
    mask[2:6, 3:9] = True
    values = dict(header=Header(frame_id="cam"), command="pick up the cup", expression="the cup",
                  mask=mask, target=primary_target(mask, mask.astype(np.float32)),
                  threshold=0.5, unknown_words=(), inference_time=0.01, point=(0.1, 0.0, 1.0))
    return FrameResult(**{**values, **fields})


def test_extent_and_tracking_fields(box_extent):
    e, _ = box_extent
    points = TargetPoints(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    msg = segmentation_msg(frame_result(geometry=TargetGeometry(points, e), tracked=True,
                                        tracked_age=4))
    assert msg.has_extent and msg.num_points == 5000 and msg.no_3d_reason == ""
    assert (msg.center_3d.x, msg.center_3d.y, msg.center_3d.z) == pytest.approx(e.center)
    assert (msg.size_3d.x, msg.size_3d.y, msg.size_3d.z) == pytest.approx(e.size)
    axes = np.array([[a.x, a.y, a.z] for a in msg.principal_axes])
    np.testing.assert_allclose(axes, e.axes)
    assert list(msg.principal_sizes) == pytest.approx(e.principal_sizes)
    assert msg.tracked and msg.tracked_age == 4
    assert msg.has_3d and (msg.bbox.x_offset, msg.bbox.width) == (3, 6)
    assert (msg.regions[0].bbox.x_offset, msg.regions[0].bbox.height) == (3, 4)
    empty = segmentation_msg(frame_result(
        geometry=TargetGeometry(points, None, "only 3 points"), reason="only 3 points"))
    assert not empty.has_extent and empty.no_3d_reason == "only 3 points"
    assert empty.has_3d and not empty.tracked


def test_box_marker_is_oriented_along_the_principal_axes(box_extent):
    from scipy.spatial.transform import Rotation

    e, rotation = box_extent
    header = Header(frame_id="camera_color_optical_frame")
    box, axes = extent_markers(header, e)
    assert (box.id, box.type, box.action) == (1, box.CUBE, box.ADD)
    assert box.header.frame_id == "camera_color_optical_frame" and box.ns == "refseg"
    q = box.pose.orientation
    matrix = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    # the box's own x axis is the largest spread: the rotated 0.2 m side
    assert abs(matrix[:, 0] @ rotation[:, 0]) == pytest.approx(1.0, abs=1e-3)
    assert (box.scale.x, box.scale.y, box.scale.z) == pytest.approx(
        np.array([0.2, 0.1, 0.05]), rel=0.03)
    assert (axes.id, axes.type) == (2, axes.LINE_LIST)
    assert len(axes.points) == 6 and len(axes.colors) == 6
    start, end = axes.points[0], axes.points[1]
    length = np.linalg.norm([end.x - start.x, end.y - start.y, end.z - start.z])
    assert length == pytest.approx(box.scale.x / 2)


def test_no_extent_deletes_both_markers():
    box, axes = extent_markers(Header(), None)
    assert box.action == box.DELETE and axes.action == axes.DELETE
    assert {box.id, axes.id} == {1, 2}


def test_target_cloud_message():
    xyz = np.array([[0.0, 0.1, 0.7], [0.01, 0.1, 0.71]], np.float32)
    rgb = np.array([[200, 10, 10], [190, 20, 5]], np.uint8)
    header = Header(frame_id="cam")
    msg = target_cloud_msg(header, TargetPoints(xyz, rgb))
    assert msg.header.frame_id == "cam" and msg.width == 2
    back_xyz, back_rgb = cloud_to_arrays(msg)
    np.testing.assert_array_equal(back_xyz, xyz)
    np.testing.assert_array_equal(back_rgb, rgb)


FIRST_FRAME = r"""
import sys
import numpy as np
from std_msgs.msg import Header
from refseg_model.synth import make_demo_scene
from refseg_node.ros_io.image_conversion import depth16_msg, rgb8_msg
from refseg_node.sim.synthetic_camera import camera_info_msg
import refseg_node.node  # what the node process imports when it starts
from refseg_node.ros_io import messages
from refseg_node.language.queries import prepare_query
from refseg_node.parameters import PARAMETERS, Settings
from refseg_node.perception.pipeline import carried_frame
from refseg_node.perception.tracking import Carried
from refseg_node.ros_io.image_conversion import decode_frame
from refseg_node.sensors import SensorCache

scene, _, region = make_demo_scene(0, 160, 120)
header = Header(frame_id="camera")
sensors = SensorCache()
sensors.add_depth(depth16_msg(scene.depth_m, header))
sensors.set_camera_info(camera_info_msg(scene.K, 160, 120, header))
settings = Settings.from_values({p.name: p.default for p in PARAMETERS})
carried = Carried(1, 0, region.mask, region.mask.astype(np.float32), None)
before = set(sys.modules)
image = rgb8_msg(scene.rgb, header)
rgb = decode_frame(image)
query = prepare_query("the cup", "the cup", lambda expression: ())
result = carried_frame(image.header, rgb, carried, query, settings, sensors,
                       lambda kind, text: None)
assert result.geometry is not None and result.geometry.extent is not None
messages.segmentation_msg(result)
messages.centroid_msg(result)
messages.marker_msg(result.header, result.point, settings.marker_scale)
messages.extent_markers(result.header, result.geometry.extent)
messages.target_cloud_msg(result.header, result.geometry.points)
messages.overlay_msg(result, rgb)
print(sorted(set(sys.modules) - before))
"""


def test_the_first_answer_imports_nothing():
    """Every module a frame's outputs need is imported when the node starts.

    Not on its first answer: a lazy ``scipy.spatial.transform`` import (0.5 s of CPU) once held
    the first answer's publish for seconds on a loaded machine, and the tracker with it (the
    import lock).
    """
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FIRST_FRAME], capture_output=True, text=True,
                         env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", out.stdout
