"""Depth frames paired with a colour frame by stamp; the depth of a frame in metres or why not."""

import dataclasses
import threading
import time

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


# -- waiting for a depth frame that comes after its colour frame (depth_wait) -----------------
TOLERANCE = 0.01


def depth(sec, nanosec=0):
    return depth16_msg(np.full((4, 5), 1.0, np.float32), header(sec, nanosec))


def pair_arriving_late(sensors, late):
    """Pair frame 10 while ``late`` (its depth) is added 50 ms later from another thread."""
    timer = threading.Timer(0.05, sensors.add_depth, args=(late,))
    timer.start()
    have, paired, _ = sensors.pair(header(10), TOLERANCE, time.monotonic() + 30.0)
    timer.join()
    return have, paired


def test_a_late_depth_frame_is_waited_for():
    sensors = SensorCache()
    sensors.add_depth(depth(9))                 # the stream runs: the frame before
    late = depth(10)
    assert pair_arriving_late(sensors, late) == (True, late)


def test_without_a_deadline_only_what_arrived_is_paired():
    sensors = SensorCache()
    sensors.add_depth(depth(9))
    have, paired, _ = sensors.pair(header(10), TOLERANCE)
    assert have and paired is None
    why = sensors.why_unpaired(header(10), TOLERANCE, 0.0)
    assert why.startswith("no depth frame within 0.01 s of the colour frame's stamp")
    assert "the newest depth frame is 1000 ms older" in why


def test_no_wait_when_the_frames_depth_cannot_come_any_more():
    sensors = SensorCache()
    sensors.add_depth(depth(9))
    sensors.add_depth(depth(11))                # later depth arrived: the frame's own was lost
    # A deadline far away: this returns at once (else the test would hang until it).
    have, paired, _ = sensors.pair(header(10), TOLERANCE, time.monotonic() + 3600.0)
    assert have and paired is None
    assert "depth frames up to 1000 ms after it arrived, but not its own" in \
        sensors.why_unpaired(header(10), TOLERANCE, 0.0)


def test_no_depth_stream_means_no_wait():
    sensors = SensorCache()
    have, paired, _ = sensors.pair(header(10), TOLERANCE, time.monotonic() + 3600.0)
    assert not have and paired is None
    assert sensors.why_unpaired(header(10), TOLERANCE, 0.0) == \
        "no depth frame within 0.01 s of the colour frame's stamp"


def test_the_closest_frame_within_tolerance_is_paired():
    sensors = SensorCache()
    for nanosec in (0, 4_000_000, 30_000_000):
        sensors.add_depth(depth(10, nanosec))
    have, paired, _ = sensors.pair(header(10, 5_000_000), TOLERANCE)
    assert paired.header.stamp.nanosec == 4_000_000


def test_one_answers_view_waits_up_to_its_deadline():
    from sensor_msgs.msg import CameraInfo

    s = Settings.from_values({p.name: p.default for p in PARAMETERS})
    sensors = SensorCache()
    sensors.set_camera_info(CameraInfo(width=5, height=4, k=[50.0, 0, 2, 0, 50.0, 2, 0, 0, 1]))
    sensors.add_depth(depth(9))
    late = threading.Timer(0.05, sensors.add_depth, args=(depth(10),))
    late.start()
    paired = sensors.waiting_until(time.monotonic() + 30.0).depth_for(header(10), s)
    late.join()
    assert paired.depth_m is not None and paired.reason == ""
    missing = sensors.waiting_until(time.monotonic() + 0.01).depth_for(header(12), s)
    assert missing.warning == "no_depth_pair" and "(depth_wait)" in missing.reason


def test_the_first_depth_frame_is_waited_for_when_a_depth_publisher_is_matched():
    sensors = SensorCache()
    sensors.set_depth_publishers(1)             # the camera publishes depth: none arrived yet
    first = depth(10)
    assert pair_arriving_late(sensors, first) == (True, first)
