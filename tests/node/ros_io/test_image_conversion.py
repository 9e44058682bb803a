"""Image <-> numpy conversion on hand-built messages, with no ROS graph (as cv_bridge tests)."""

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from refseg_node.ros_io.image_conversion import (
    ENCODINGS,
    ConversionError,
    array_to_image,
    bgr8_msg,
    depth16_msg,
    depth_to_metres,
    image_to_array,
    mono8_msg,
    rgb8_msg,
    to_rgb,
)

RNG = np.random.default_rng(0)


def random_array(encoding, height=5, width=7):
    enc = ENCODINGS[encoding]
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    if enc.dtype == np.float32:
        return RNG.uniform(0.1, 9.0, shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(enc.dtype).max, shape, endpoint=True).astype(enc.dtype)


def hand_message(array, encoding, pad=0, bigendian=False, trim_last_padding=False):
    """Build an Image by hand: rows of ``array`` followed by ``pad`` garbage bytes."""
    array = np.asarray(array)
    height, width = array.shape[:2]
    dtype = array.dtype.newbyteorder(">" if bigendian else "<")
    rows = array.astype(dtype).reshape(height, -1).view(np.uint8).reshape(height, -1)
    garbage = RNG.integers(0, 256, (height, pad), dtype=np.uint8)
    data = np.concatenate([rows, garbage], axis=1).ravel()
    if trim_last_padding and pad:
        data = data[:-pad]
    return Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                 step=rows.shape[1] + pad, data=data.tobytes())


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 3, 64])
def test_every_encoding_honours_step_padding(encoding, pad):
    array = random_array(encoding)
    out = image_to_array(hand_message(array, encoding, pad=pad))
    assert out.dtype == ENCODINGS[encoding].dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_big_endian_data_is_read_as_big_endian(encoding):
    array = random_array(encoding)
    out = image_to_array(hand_message(array, encoding, pad=2, bigendian=True))
    np.testing.assert_array_equal(out, array)
    assert out.dtype.isnative


def test_last_row_may_omit_its_padding():
    array = random_array("rgb8")
    out = image_to_array(hand_message(array, "rgb8", pad=5, trim_last_padding=True))
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_array_to_image_round_trip(encoding):
    array = random_array(encoding, 4, 6)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = array_to_image(array, encoding, header)
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (4, 6, encoding, "cam")
    assert msg.header.stamp.nanosec == 345
    assert msg.step == 6 * ENCODINGS[encoding].channels * ENCODINGS[encoding].dtype.itemsize
    np.testing.assert_array_equal(image_to_array(msg), array)


def test_to_rgb_orders_channels_for_every_colour_encoding():
    rgb = random_array("rgb8")
    bgr = rgb[:, :, ::-1]
    alpha = RNG.integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(hand_message(rgb, "rgb8", pad=1)), rgb)
    np.testing.assert_array_equal(to_rgb(hand_message(bgr, "bgr8", pad=1)), rgb)
    np.testing.assert_array_equal(
        to_rgb(hand_message(np.concatenate([rgb, alpha], 2), "rgba8", pad=1)), rgb)
    np.testing.assert_array_equal(
        to_rgb(hand_message(np.concatenate([bgr, alpha], 2), "bgra8", pad=1)), rgb)
    grey = random_array("mono8")
    out = to_rgb(hand_message(grey, "mono8", pad=3))
    assert out.shape == grey.shape + (3,) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 1], grey)
    grey16 = np.array([[0, 257, 65535]], np.uint16)
    np.testing.assert_array_equal(to_rgb(hand_message(grey16, "mono16"))[0, :, 0], [0, 1, 255])


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_to_rgb_refuses_depth_images(encoding):
    with pytest.raises(ConversionError, match="not a colour image"):
        to_rgb(hand_message(random_array(encoding), encoding))


def test_depth_to_metres_16uc1_millimetres_with_zero_invalid():
    mm = np.array([[0, 1000, 1500], [65535, 1, 0]], np.uint16)
    metres = depth_to_metres(hand_message(mm, "16UC1", pad=2))
    assert metres.dtype == np.float32
    np.testing.assert_allclose(metres, [[np.nan, 1.0, 1.5], [65.535, 0.001, np.nan]], rtol=1e-6)


def test_depth_to_metres_32fc1_marks_nan_inf_and_non_positive_invalid():
    m = np.array([[np.nan, 1.25, np.inf], [-1.0, 0.0, 3.5]], np.float32)
    metres = depth_to_metres(hand_message(m, "32FC1", pad=4, bigendian=True))
    np.testing.assert_array_equal(np.isnan(metres), [[True, False, True], [True, True, False]])
    assert metres[0, 1] == np.float32(1.25) and metres[1, 2] == np.float32(3.5)


def test_depth_to_metres_refuses_colour():
    with pytest.raises(ConversionError, match="not a depth image"):
        depth_to_metres(hand_message(random_array("rgb8"), "rgb8"))


@pytest.mark.parametrize("encoding", ["yuv422", "bayer_rggb8", "", "RGB8", "64FC1"])
def test_unsupported_encodings_are_named(encoding):
    msg = Image(height=2, width=2, encoding=encoding, step=8, data=bytes(16))
    with pytest.raises(ConversionError, match="unsupported encoding"):
        image_to_array(msg)


def test_zero_size_images_are_refused():
    for h, w in ((0, 5), (5, 0), (0, 0)):
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=bytes(h * w * 3))
        with pytest.raises(ConversionError, match="empty image"):
            to_rgb(msg)


def test_huge_images_are_refused_before_reading_data():
    msg = Image(height=100_000, width=100_000, encoding="rgb8", step=300_000, data=bytes(10))
    with pytest.raises(ConversionError, match="too large"):
        to_rgb(msg)
    small = hand_message(random_array("mono8", 10, 10), "mono8")
    with pytest.raises(ConversionError, match="100 pixels, limit 99"):
        image_to_array(small, max_pixels=99)


def test_step_smaller_than_a_row_is_refused():
    msg = hand_message(random_array("rgb8"), "rgb8")
    msg.step = msg.width * 3 - 1
    with pytest.raises(ConversionError, match="step .* smaller"):
        image_to_array(msg)


def test_data_too_short_or_too_long_is_refused():
    msg = hand_message(random_array("bgr8"), "bgr8", pad=2)
    short = Image(height=msg.height, width=msg.width, encoding="bgr8", step=msg.step,
                  data=bytes(msg.data)[:-3])
    with pytest.raises(ConversionError, match="needs"):
        image_to_array(short)
    long = Image(height=msg.height, width=msg.width, encoding="bgr8", step=msg.step,
                 data=bytes(msg.data) + b"\0")
    with pytest.raises(ConversionError, match="more than step"):
        image_to_array(long)


def test_mono8_msg_is_255_on_the_mask():
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    msg = mono8_msg(mask, Header(frame_id="f"))
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("mono8", 4, "f")
    out = image_to_array(msg)
    assert out[1, 2] == 255 and out.sum() == 255
    with pytest.raises(ConversionError, match="2-D"):
        mono8_msg(np.zeros((2, 2, 2), bool))


def test_builders_check_dtype_and_shape():
    with pytest.raises(ConversionError, match="uint8"):
        bgr8_msg(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ConversionError, match="shape"):
        rgb8_msg(np.zeros((2, 2, 4), np.uint8))


def test_depth16_msg_rounds_to_millimetres_and_zeroes_invalid():
    depth = np.array([[1.2344, np.nan, -2.0, 0.0004, 0.0016]], np.float32)
    out = image_to_array(depth16_msg(depth))
    np.testing.assert_array_equal(out, [[1234, 0, 0, 0, 2]])


def test_compressed_png_and_jpeg_decode_to_rgb():
    from refseg_node.ros_io.image_conversion import compressed_msg, compressed_to_rgb

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(compressed_to_rgb(compressed_msg(rgb, "png")), rgb)
    smooth = np.zeros((24, 32, 3), np.uint8)
    smooth[..., 0] = 200                            # flat red: JPEG keeps it close
    decoded = compressed_to_rgb(compressed_msg(smooth, "jpeg"))
    assert decoded.shape == (24, 32, 3) and np.abs(decoded.astype(int) - smooth).max() < 8


def test_compressed_errors_are_conversion_errors():
    from sensor_msgs.msg import CompressedImage

    from refseg_node.ros_io.image_conversion import (
        ConversionError,
        compressed_msg,
        compressed_to_rgb,
    )

    with pytest.raises(ConversionError, match="empty image"):
        compressed_to_rgb(CompressedImage(format="jpeg"))
    with pytest.raises(ConversionError, match="cannot decode"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"not a jpeg at all"))
    big = compressed_msg(np.zeros((100, 100, 3), np.uint8), "png")
    with pytest.raises(ConversionError, match="too large"):
        compressed_to_rgb(big, max_pixels=100 * 99)
    truncated = compressed_msg(np.zeros((100, 100, 3), np.uint8), "png")
    truncated.data = bytes(truncated.data)[:40]
    with pytest.raises(ConversionError):
        compressed_to_rgb(truncated)
