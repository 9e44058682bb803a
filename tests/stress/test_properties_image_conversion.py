"""Property tests of Image <-> numpy conversion: every encoding, row padding, byte order."""

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("sensor_msgs.msg")
from sensor_msgs.msg import Image  # noqa: E402

from refseg_node.ros_io.image_conversion import (  # noqa: E402
    ENCODINGS,
    ConversionError,
    array_to_image,
    depth_to_metres,
    image_to_array,
    to_rgb,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _array(draw, encoding, height, width):
    enc = ENCODINGS[encoding]
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    if enc.dtype == np.float32:
        values = draw(st.lists(st.floats(width=32, allow_nan=False), min_size=int(np.prod(shape)),
                               max_size=int(np.prod(shape))))
        return np.array(values, dtype=np.float32).reshape(shape)
    seed = draw(st.integers(0, 2**32 - 1))
    info = np.iinfo(enc.dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, shape, dtype=enc.dtype,
                                                endpoint=True)


@st.composite
def padded_messages(draw):
    """Draw an image message built by hand: any encoding, row padding, either byte order."""
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    array = _array(draw, encoding, height, width)
    big = draw(st.booleans())
    padding = draw(st.integers(0, 13))
    enc = ENCODINGS[encoding]
    swapped = array.astype(enc.dtype.newbyteorder(">" if big else "<"))
    rows = swapped.reshape(height, -1).view(np.uint8).reshape(height, -1)
    pad = np.full((height, padding), 0xAB, np.uint8)
    data = np.concatenate([rows, pad], axis=1).tobytes()
    if draw(st.booleans()) and padding:  # the last row need not carry its padding
        data = data[:-padding]
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big),
                step=rows.shape[1] + padding, data=data)
    return msg, array


@SETTINGS
@given(padded_messages())
def test_hand_built_messages_decode_exactly(case):
    msg, array = case
    out = image_to_array(msg)
    assert out.dtype == ENCODINGS[msg.encoding].dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, array)
    if msg.encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1"):
        rgb = to_rgb(msg)
        assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8
        expected = {"rgb8": lambda a: a, "bgr8": lambda a: a[:, :, ::-1],
                    "rgba8": lambda a: a[:, :, :3], "bgra8": lambda a: a[:, :, 2::-1]}.get(
            msg.encoding, lambda a: np.repeat(a[:, :, None], 3, axis=2))(array)
        np.testing.assert_array_equal(rgb, expected)


@SETTINGS
@given(padded_messages())
def test_round_trip_through_array_to_image(case):
    msg, array = case
    again = array_to_image(image_to_array(msg), msg.encoding)
    assert again.step == again.width * ENCODINGS[msg.encoding].channels * (
        ENCODINGS[msg.encoding].dtype.itemsize)
    assert bool(again.is_bigendian) == (sys.byteorder == "big")
    np.testing.assert_array_equal(image_to_array(again), array)


@SETTINGS
@given(padded_messages())
def test_depth_is_metres_or_nan(case):
    msg, array = case
    if msg.encoding not in ("16UC1", "mono16", "32FC1"):
        with pytest.raises(ConversionError):
            depth_to_metres(msg)
        return
    metres = depth_to_metres(msg)
    assert metres.dtype == np.float32 and metres.shape == array.shape
    valid = ~np.isnan(metres)
    assert (metres[valid] > 0).all()
    if msg.encoding == "32FC1":
        np.testing.assert_array_equal(valid, np.isfinite(array) & (array > 0))
    else:
        np.testing.assert_array_equal(valid, array > 0)
        np.testing.assert_allclose(metres[valid], array[valid] / 1000.0, rtol=1e-6)


@SETTINGS
@given(encoding=st.one_of(st.sampled_from(sorted(ENCODINGS)), st.text(max_size=12)),
       height=st.integers(0, 2**32 - 1), width=st.integers(0, 2**32 - 1),
       step=st.integers(0, 2**32 - 1), data=st.binary(max_size=512),
       big=st.booleans(), small=st.booleans())
def test_malformed_messages_raise_conversion_error_only(encoding, height, width, step, data, big,
                                                        small):
    if small:  # also near-valid sizes, where the data length decides
        height, width, step = height % 5, width % 5, step % 40
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big), step=step,
                data=data)
    for convert in (image_to_array, to_rgb, depth_to_metres):
        try:
            out = convert(msg)
        except ConversionError as err:
            assert str(err)
        else:
            assert out.shape[:2] == (height, width)
