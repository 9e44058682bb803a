"""Depth frames paired with a colour frame by stamp; the depth of a frame in metres or why not."""

import dataclasses

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from refseg_node.parameters import PARAMETERS, Settings
from refseg_node.ros_io.image_conversion import depth16_msg
from refseg_node.sensors import SensorCache, StampedBuffer


def test_stamped_buffer_pairs_by_timestamp_within_tolerance():
    buffer = StampedBuffer(3)
    for t in (100, 200, 300, 400):
        buffer.add(t, f"d{t}")
    assert len(buffer) == 3
    assert buffer.closest(310, 50) == "d300"
    assert buffer.closest(260, 50) == "d300"
    assert buffer.closest(250, 49) is None
    assert buffer.closest(100, 10) is None            # dropped (oldest)
    assert buffer.closest(1000, 10**9) == "d400"
    buffer.clear()
    assert buffer.closest(300, 10) is None
    with pytest.raises(ValueError):
        StampedBuffer(0)


def header(sec: int, nanosec: int = 0) -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="cam")


def test_the_depth_of_a_frame_or_why_there_is_none():
    from sensor_msgs.msg import CameraInfo

    s = dataclasses.replace(Settings.from_values({p.name: p.default for p in PARAMETERS}),
                            depth_sync_tolerance=0.02)
    sensors = SensorCache()
    paired = sensors.depth_for(header(10), s)
    assert paired.depth_m is None and paired.warning == "" and s.depth_topic in paired.reason
    depth = np.full((4, 6), 0.75)
    sensors.add_depth(depth16_msg(depth, header(10, 10_000_000)))
    paired = sensors.depth_for(header(11), s)
    assert paired.depth_m is None and paired.warning == "no_depth_pair"
    paired = sensors.depth_for(header(10), s)
    assert paired.depth_m is None and paired.warning == "no_camera_info"
    sensors.set_camera_info(CameraInfo(width=6, height=4, k=[0.0] * 9))
    paired = sensors.depth_for(header(10), s)
    assert paired.depth_m is None and paired.warning == "bad_depth" and "K" in paired.reason
    sensors.set_camera_info(CameraInfo(width=6, height=4,
                                       k=[50.0, 0, 3, 0, 50.0, 2, 0, 0, 1]))
    paired = sensors.depth_for(header(10), s)
    np.testing.assert_allclose(paired.depth_m, depth)
    assert paired.intrinsics.fx == 50.0 and paired.reason == ""
    sensors.clear()
    assert sensors.depth_for(header(10), s).warning == ""
