"""``sensor_msgs/PointCloud2`` <-> numpy for clouds of x y z rgb points (no ROS graph needed).

The layout is the one rviz and PCL read: four float32 fields ``x y z rgb`` at offsets 0, 4, 8, 12
(16 bytes a point), one row (``height`` 1), no invalid points (``is_dense``). ``rgb`` holds the
colour packed as ``0x00RRGGBB`` in the bits of a float32, PCL's convention. The message's byte
order is this machine's (``is_bigendian`` says which); :func:`cloud_to_arrays` reads either.
"""

from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

FIELD_NAMES = ("x", "y", "z", "rgb")
POINT_STEP = 16


class CloudError(ValueError):
    """A PointCloud2 that is not an x y z rgb float32 cloud."""


def _dtype(big_endian: bool) -> np.dtype:
    order = ">" if big_endian else "<"
    # rgb is read and written as its bits (uint32): no float arithmetic touches the colour.
    return np.dtype({"names": list(FIELD_NAMES), "formats": [order + "f4"] * 3 + [order + "u4"],
                     "offsets": [0, 4, 8, 12], "itemsize": POINT_STEP})


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack Nx3 uint8 colours into the N uint32 bit patterns ``0x00RRGGBB`` of PCL's ``rgb``."""
    rgb = np.asarray(rgb, dtype=np.uint32).reshape(-1, 3)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


def unpack_rgb(bits: np.ndarray) -> np.ndarray:
    """Return the Nx3 uint8 colours of N packed ``rgb`` bit patterns (uint32)."""
    bits = np.asarray(bits, dtype=np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF],
                    axis=1).astype(np.uint8)


def cloud_msg(xyz: np.ndarray, rgb: np.ndarray | None, header: Header) -> PointCloud2:
    """Return a PointCloud2 of Nx3 float points (metres) with Nx3 uint8 colours (grey if None)."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    if rgb is None:
        rgb = np.full((len(xyz), 3), 128, np.uint8)
    rgb = np.asarray(rgb)
    if rgb.shape != xyz.shape:
        raise CloudError(f"colours {rgb.shape} do not match points {xyz.shape}")
    if not np.isfinite(xyz).all():
        raise CloudError("points must be finite (the cloud is published as dense)")
    big_endian = sys.byteorder == "big"
    data = np.empty(len(xyz), dtype=_dtype(big_endian))
    data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    data["rgb"] = pack_rgb(rgb)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, len(xyz)
    msg.fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, name in enumerate(FIELD_NAMES)]
    msg.is_bigendian = big_endian
    msg.point_step = POINT_STEP
    msg.row_step = POINT_STEP * len(xyz)
    msg.data = data.tobytes()
    msg.is_dense = True
    return msg


def cloud_to_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """Return ``(xyz Nx3 float32, rgb Nx3 uint8 or None)`` of a cloud with float32 x y z fields.

    Any point step, field order and byte order is read; ``rgb`` (packed float32) is optional.
    Raises :class:`CloudError` for clouds without float32 x, y and z.
    """
    fields = {f.name: f for f in msg.fields}
    for name in ("x", "y", "z"):
        if name not in fields or fields[name].datatype != PointField.FLOAT32:
            raise CloudError(f"the cloud has no float32 field {name!r} (fields: "
                             f"{[f.name for f in msg.fields]})")
    names = [n for n in FIELD_NAMES if n in fields and fields[n].datatype == PointField.FLOAT32]
    count = int(msg.width) * int(msg.height)
    if msg.point_step < 12 or len(msg.data) < count * msg.point_step:
        raise CloudError(f"{len(msg.data)} bytes cannot hold {count} points of "
                         f"{msg.point_step} bytes")
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": names, "formats": [order + ("u4" if n == "rgb" else "f4")
                                                  for n in names],
                      "offsets": [fields[n].offset for n in names], "itemsize": msg.point_step})
    if msg.height > 1 and msg.row_step != msg.width * msg.point_step:
        rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.row_step)
        raw = np.ascontiguousarray(rows[:, :msg.width * msg.point_step]).tobytes()
    else:
        raw = bytes(msg.data)[:count * msg.point_step]
    data = np.frombuffer(raw, dtype=dtype, count=count)
    xyz = np.stack([data["x"], data["y"], data["z"]], axis=1).astype(np.float32)
    rgb = unpack_rgb(data["rgb"]) if "rgb" in names else None
    return xyz, rgb
