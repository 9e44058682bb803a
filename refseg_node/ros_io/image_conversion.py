"""Convert ``sensor_msgs/Image`` messages to numpy arrays and back, without a ROS graph.

The ROS 2 ``cv_bridge`` has no wheel for this environment, so this module does the small part of it
the node needs: the encodings cameras publish (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``,
``mono16``, ``16UC1``, ``32FC1``), rows padded beyond ``width * pixel size`` (``step``), and
big-endian data; ``sensor_msgs/CompressedImage`` (JPEG, PNG) is decoded with OpenCV. Every
malformed message raises :class:`ConversionError` with the reason, so a node
can log it and skip the frame instead of producing a wrong mask.
"""

from __future__ import annotations

import array as array_module
import io
import sys
from dataclasses import dataclass

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

# Images larger than this many pixels are refused (a 4096 x 4096 frame is 16.7 million pixels).
DEFAULT_MAX_PIXELS = 4096 * 4096


class ConversionError(ValueError):
    """An image message that cannot be converted; the message says why."""


@dataclass(frozen=True)
class Encoding:
    """Memory layout of one ``sensor_msgs/Image`` encoding."""

    dtype: np.dtype
    channels: int


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(np.dtype(np.uint8), 3),
    "bgr8": Encoding(np.dtype(np.uint8), 3),
    "rgba8": Encoding(np.dtype(np.uint8), 4),
    "bgra8": Encoding(np.dtype(np.uint8), 4),
    "mono8": Encoding(np.dtype(np.uint8), 1),
    "8UC1": Encoding(np.dtype(np.uint8), 1),
    "mono16": Encoding(np.dtype(np.uint16), 1),
    "16UC1": Encoding(np.dtype(np.uint16), 1),
    "32FC1": Encoding(np.dtype(np.float32), 1),
}

COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


def _describe(msg: Image) -> str:
    return f"{msg.width}x{msg.height} {msg.encoding or '(no encoding)'} image"


def image_to_array(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the pixels of ``msg`` as an array of shape ``(H, W)`` or ``(H, W, C)``.

    The array has the encoding's dtype in native byte order and no row padding. It is a copy, so it
    stays valid after the message is gone. Raises :class:`ConversionError` for an unsupported
    encoding, a zero-size or too large image, or ``data`` too short for ``step * height``.
    """
    enc = ENCODINGS.get(msg.encoding)
    if enc is None:
        raise ConversionError(
            f"unsupported encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})")
    height, width = int(msg.height), int(msg.width)
    if height == 0 or width == 0:
        raise ConversionError(f"empty image: {_describe(msg)}")
    if height * width > max_pixels:
        raise ConversionError(
            f"image too large: {_describe(msg)} has {height * width} pixels, limit {max_pixels}")
    row_bytes = width * enc.channels * enc.dtype.itemsize
    step = int(msg.step)
    if step < row_bytes:
        raise ConversionError(
            f"step {step} is smaller than width * pixel size = {row_bytes} for {_describe(msg)}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    # The last row need not carry its padding.
    needed = step * (height - 1) + row_bytes
    if data.size < needed:
        raise ConversionError(
            f"data has {data.size} bytes, {_describe(msg)} with step {step} needs {needed}")
    if data.size > step * height:
        raise ConversionError(
            f"data has {data.size} bytes, more than step * height = {step * height} "
            f"for {_describe(msg)}")
    if data.size < step * height:
        data = np.concatenate([data, np.zeros(step * height - data.size, np.uint8)])
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    dtype = enc.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    array = np.ascontiguousarray(rows).view(dtype).reshape(height, width, enc.channels)
    array = array.astype(enc.dtype.newbyteorder("="), copy=True)
    return array[:, :, 0] if enc.channels == 1 else array


def _require_encoding(msg: Image, allowed, what: str) -> None:
    """Raise ``ConversionError`` unless ``msg.encoding`` is one of ``allowed``."""
    if msg.encoding not in allowed:
        kind = f"is not a {what} image" if msg.encoding in ENCODINGS else "is unsupported"
        raise ConversionError(
            f"unsupported encoding {msg.encoding!r}: it {kind} ({what} encodings: "
            f"{', '.join(allowed)})")


def to_rgb(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a colour (or grey) image message as an ``(H, W, 3)`` uint8 RGB array.

    Alpha is dropped; grey images are replicated to three channels; ``mono16`` is scaled to
    8 bits. Depth encodings (``16UC1``, ``32FC1``) are refused: they are not pictures.
    """
    _require_encoding(msg, COLOUR_ENCODINGS, "colour")
    array = image_to_array(msg, max_pixels)
    if msg.encoding == "rgb8":
        return array
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(array[:, :, ::-1])
    if msg.encoding == "rgba8":
        return np.ascontiguousarray(array[:, :, :3])
    if msg.encoding == "bgra8":
        return np.ascontiguousarray(array[:, :, 2::-1])
    if msg.encoding == "mono16":
        array = (array // 257).astype(np.uint8)
    return np.repeat(array[:, :, None], 3, axis=2)


def compressed_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG...) to ``(H, W, 3)`` uint8 RGB.

    The picture's size is read from its header (Pillow) before any pixel is decoded, so an
    image over ``max_pixels`` is refused without being expanded; OpenCV decodes it.
    """
    data = np.frombuffer(bytes(msg.data), np.uint8)
    described = f"CompressedImage (format {msg.format!r}, {data.size} bytes)"
    if data.size == 0:
        raise ConversionError(f"empty image: {described} has no data")
    try:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data.tobytes())) as probe:
            width, height = probe.size
    except ImportError:  # Pillow is optional: decode, then check the size
        width = height = None
    except Exception as err:  # noqa: BLE001 - Pillow raises many types for bad data
        raise ConversionError(f"cannot decode {described}: {err}") from None
    if width is not None and width * height > max_pixels:
        raise ConversionError(f"image too large: {described} is {width}x{height}, "
                              f"limit {max_pixels} pixels")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConversionError(f"cannot decode {described}: not an image OpenCV can read")
    if bgr.shape[0] * bgr.shape[1] > max_pixels:
        raise ConversionError(f"image too large: {described} is {bgr.shape[1]}x{bgr.shape[0]}, "
                              f"limit {max_pixels} pixels")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def decode_frame(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a camera frame as ``(H, W, 3)`` uint8 RGB: the one decoder of the node's frames.

    ``msg`` is a ``sensor_msgs/Image`` (or the raw subscription's ``RawImage``) or a
    ``sensor_msgs/CompressedImage``; both the model's worker and the tracker decode through here.
    """
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg, max_pixels)
    return to_rgb(msg, max_pixels)


def compressed_msg(rgb: np.ndarray, fmt: str = "png", header=None):
    """Return a ``sensor_msgs/CompressedImage`` of an RGB array (``fmt``: ``png`` or ``jpeg``)."""
    ok, encoded = cv2.imencode(".png" if fmt == "png" else ".jpg",
                               np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ConversionError(f"OpenCV cannot encode {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = encoded.tobytes()
    return msg


def depth_to_metres(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a depth image as ``(H, W)`` float32 metres with NaN where there is no depth.

    ``16UC1`` / ``mono16`` hold millimetres (0 = no depth); ``32FC1`` holds metres (NaN, inf, 0 or
    negative = no depth).
    """
    _require_encoding(msg, DEPTH_ENCODINGS, "depth")
    array = image_to_array(msg, max_pixels)
    if array.dtype == np.uint16:
        metres = array.astype(np.float32) / 1000.0
        metres[array == 0] = np.nan
        return metres
    metres = array.astype(np.float32, copy=True)
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def array_to_image(array: np.ndarray, encoding: str, header=None) -> Image:
    """Build an ``Image`` message with ``encoding`` from an array of the matching dtype and shape.

    The message has no row padding and native byte order. ``header`` (a ``std_msgs/Header``) is
    copied into the message when given.
    """
    enc = ENCODINGS.get(encoding)
    if enc is None:
        raise ConversionError(
            f"unsupported encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    array = np.asarray(array)
    if array.dtype != enc.dtype:
        raise ConversionError(f"{encoding} needs a {enc.dtype} array, got {array.dtype}")
    expected_ndim = 2 if enc.channels == 1 else 3
    if array.ndim == 3 and enc.channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != expected_ndim or (enc.channels > 1 and array.shape[2] != enc.channels):
        raise ConversionError(
            f"{encoding} needs shape (H, W{'' if enc.channels == 1 else f', {enc.channels}'}), "
            f"got {array.shape}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = sys.byteorder == "big"
    msg.step = msg.width * enc.channels * enc.dtype.itemsize
    data = array_module.array("B")
    # One copy, straight into the message's buffer (frombytes takes a byte view only).
    data.frombytes(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    msg.data = data
    return msg


def mono8_msg(mask: np.ndarray, header=None) -> Image:
    """Build a ``mono8`` mask message: 255 where ``mask`` is true (or non-zero), else 0."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ConversionError(f"a mask must be 2-D, got shape {mask.shape}")
    # A bool mask's bytes are 0 / 1 already: one uint8 multiply, no wider temporary.
    ones = mask if mask.dtype == np.bool_ else mask != 0
    return array_to_image(ones.view(np.uint8) * np.uint8(255), "mono8", header)


def bgr8_msg(image: np.ndarray, header=None) -> Image:
    """Build a ``bgr8`` message from an ``(H, W, 3)`` uint8 array in BGR order (OpenCV's)."""
    return array_to_image(image, "bgr8", header)


def rgb8_msg(image: np.ndarray, header=None) -> Image:
    """Build an ``rgb8`` message from an ``(H, W, 3)`` uint8 array in RGB order."""
    return array_to_image(image, "rgb8", header)


def depth16_msg(depth_m: np.ndarray, header=None) -> Image:
    """Build a ``16UC1`` depth message in millimetres from metres (NaN / <= 0 become 0)."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    mm = np.where(valid, np.rint(np.where(valid, depth_m, 0.0) * 1000.0), 0.0)
    return array_to_image(np.clip(mm, 0, 65535).astype(np.uint16), "16UC1", header)
