"""PointCloud2 <-> numpy (ros_io.pointcloud2): layout, round trips and foreign clouds."""

import sys

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from refseg_node.ros_io.pointcloud2 import (
    CloudError,
    cloud_msg,
    cloud_to_arrays,
    pack_rgb,
    unpack_rgb,
)


def test_layout_is_x_y_z_rgb_float32():
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = 12
    msg = cloud_msg(np.array([[0.1, -0.2, 0.9]]), np.array([[255, 0, 10]], np.uint8), header)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"]
    assert [f.offset for f in msg.fields] == [0, 4, 8, 12]
    assert {f.datatype for f in msg.fields} == {PointField.FLOAT32}
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 1, 16, 16)
    assert msg.is_dense and msg.is_bigendian == (sys.byteorder == "big")
    assert msg.header.frame_id == "camera_color_optical_frame" and msg.header.stamp.sec == 12
    raw = bytes(msg.data)
    assert np.frombuffer(raw[:12], np.float32).tolist() == pytest.approx([0.1, -0.2, 0.9])
    assert np.frombuffer(raw[12:16], np.uint32)[0] == 0xFF000A


def test_round_trip_keeps_points_and_colours():
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(1000, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (1000, 3)).astype(np.uint8)
    back_xyz, back_rgb = cloud_to_arrays(cloud_msg(xyz, rgb, Header()))
    np.testing.assert_array_equal(back_xyz, xyz)
    np.testing.assert_array_equal(back_rgb, rgb)
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb)), rgb)


def test_empty_cloud():
    msg = cloud_msg(np.zeros((0, 3)), None, Header())
    assert msg.width == 0 and len(msg.data) == 0
    xyz, rgb = cloud_to_arrays(msg)
    assert xyz.shape == (0, 3) and rgb.shape == (0, 3)


def test_reads_a_big_endian_cloud_with_padding_and_no_colour():
    xyz = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    data = np.zeros(2, dtype=np.dtype({"names": ["z", "x", "y"], "formats": [">f4"] * 3,
                                       "offsets": [0, 8, 12], "itemsize": 20}))
    data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    msg = PointCloud2(height=1, width=2, is_bigendian=True, point_step=20, row_step=40,
                      data=data.tobytes(), is_dense=True)
    msg.fields = [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
                  for n, o in (("z", 0), ("x", 8), ("y", 12))]
    back, rgb = cloud_to_arrays(msg)
    np.testing.assert_array_equal(back, xyz)
    assert rgb is None


def test_bad_clouds_are_refused():
    with pytest.raises(CloudError, match="do not match"):
        cloud_msg(np.zeros((3, 3)), np.zeros((2, 3), np.uint8), Header())
    with pytest.raises(CloudError, match="finite"):
        cloud_msg(np.array([[np.nan, 0.0, 1.0]]), None, Header())
    msg = cloud_msg(np.zeros((4, 3)), None, Header())
    msg.data = bytes(msg.data)[:20]
    with pytest.raises(CloudError, match="cannot hold"):
        cloud_to_arrays(msg)
    msg.fields = msg.fields[1:]
    with pytest.raises(CloudError, match="no float32 field 'x'"):
        cloud_to_arrays(msg)
