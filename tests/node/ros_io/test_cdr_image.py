"""The node's reader of serialized sensor_msgs/Image against rclpy's own deserialisation."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from refseg_node.ros_io.cdr_image import RawImage, parse_image
from refseg_node.ros_io.image_conversion import image_to_array, rgb8_msg, to_rgb

FIELDS = ("height", "width", "encoding", "is_bigendian", "step")


def image(rng, frame_id: str, encoding: str, width: int, height: int, channels: int,
          pad: int, bigendian: int) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=bigendian,
                step=width * channels + pad)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(rng.integers(-2**31, 2**31)), \
        int(rng.integers(0, 10**9))
    msg.data = rng.integers(0, 256, msg.step * height, dtype=np.uint8).tobytes()
    return msg


@pytest.mark.parametrize("seed", range(40))
def test_every_field_matches_rclpy(seed):
    rng = np.random.default_rng(seed)
    # Every length of frame_id and encoding mod 4 (the CDR alignment after each string).
    frame_id = "".join(rng.choice(list("abcdé_/0"), int(rng.integers(0, 9))))
    encoding = ["rgb8", "bgr8", "mono8", "16UC1", "rgba8", "x", "yuv422_yuy2"][seed % 7]
    msg = image(rng, frame_id, encoding, int(rng.integers(1, 40)), int(rng.integers(1, 30)),
                int(rng.integers(1, 4)), int(rng.integers(0, 5)), seed % 2)
    buf = serialize_message(msg)
    got, want = parse_image(buf), deserialize_message(buf, Image)
    assert isinstance(got, RawImage)
    assert got.header == want.header
    assert [getattr(got, f) for f in FIELDS] == [getattr(want, f) for f in FIELDS]
    assert bytes(got.data) == bytes(want.data)


def test_the_pixels_are_a_view_of_the_received_bytes_and_convert_the_same():
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buf = serialize_message(rgb8_msg(rgb))
    got = parse_image(buf)
    assert got.data.obj is buf                             # no copy of the pixels
    np.testing.assert_array_equal(to_rgb(got), rgb)
    np.testing.assert_array_equal(image_to_array(got), image_to_array(deserialize_message(
        buf, Image)))


def test_big_endian_cdr_is_read_too():
    # rclpy writes little-endian; a big-endian writer's bytes, laid out by the CDR rules.
    body = struct.pack(">iI", 7, 9) + struct.pack(">I", 4) + b"cam\x00" \
        + struct.pack(">II", 1, 2) + struct.pack(">I", 6) + b"mono8\x00" \
        + b"\x01" + b"\x00" + struct.pack(">I", 2) + struct.pack(">I", 2) + b"\x05\x06"
    got = parse_image(b"\x00\x00\x00\x00" + body)
    assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id) == (7, 9, "cam")
    assert (got.height, got.width, got.encoding, got.is_bigendian, got.step) == \
        (1, 2, "mono8", 1, 2)
    assert bytes(got.data) == b"\x05\x06"


def test_bytes_it_cannot_read_go_to_rclpy():
    buf = serialize_message(rgb8_msg(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(Exception):                         # noqa: B017 - rclpy's own error
        parse_image(buf[:30])                              # truncated: rclpy refuses it too
    other = parse_image(b"\x00\x07" + buf[2:])            # an encapsulation it does not read
    assert isinstance(other, Image) and (other.width, other.encoding) == (4, "rgb8")
