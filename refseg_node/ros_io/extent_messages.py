"""Messages of the target's 3D extent: Segmentation fields, rviz markers, the target cloud.

No ROS graph needed. The markers share ``/refseg/marker`` with the target point's sphere (id 0):
id 1 is the target's box (a translucent ``CUBE`` along its principal axes, sized by its
principal extents), id 2 its principal axes (a ``LINE_LIST`` from the box's centre: red the
largest spread, green the second, blue the third, each as long as half the box along it).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from refseg_msgs.msg import Segmentation
from refseg_node.perception.cloud import Extent, TargetPoints
from refseg_node.ros_io.pointcloud2 import cloud_msg

MARKER_NAMESPACE = "refseg"
BOX_ID, AXES_ID = 1, 2
AXIS_COLOURS = ((1.0, 0.1, 0.1), (0.1, 0.9, 0.1), (0.2, 0.3, 1.0))
MIN_MARKER_SIZE = 0.002  # metres: rviz draws nothing for a zero scale


def fill_extent(msg: Segmentation, extent: Extent | None, reason: str = "") -> None:
    """Set the extent fields of ``msg`` (``has_extent`` false and ``no_3d_reason`` if None)."""
    msg.has_extent = extent is not None
    if extent is None:
        msg.no_3d_reason = reason
        return
    cx, cy, cz = (float(v) for v in extent.center)
    msg.center_3d = Point(x=cx, y=cy, z=cz)
    sx, sy, sz = (float(v) for v in extent.size)
    msg.size_3d = Vector3(x=sx, y=sy, z=sz)
    msg.principal_axes = [Vector3(x=float(a[0]), y=float(a[1]), z=float(a[2]))
                          for a in extent.axes]
    msg.principal_sizes = [float(v) for v in extent.principal_sizes]
    msg.num_points = int(extent.num_points)


def fill_tracking(msg: Segmentation, tracked: bool, age: int) -> None:
    """Set ``tracked`` and ``tracked_age`` (frames since the model's answer) of ``msg``."""
    msg.tracked = bool(tracked)
    msg.tracked_age = int(age)


def _quaternion(axes: np.ndarray) -> tuple[float, float, float, float]:
    x, y, z, w = Rotation.from_matrix(np.asarray(axes, dtype=np.float64).T).as_quat()
    return float(x), float(y), float(z), float(w)


def _marker(header: Header, marker_id: int) -> Marker:
    msg = Marker()
    msg.header = header
    msg.ns = MARKER_NAMESPACE
    msg.id = marker_id
    return msg


def extent_markers(header: Header, extent: Extent | None) -> list[Marker]:
    """Return the box and axes markers of ``extent``, or DELETEs of both when it is None."""
    box, axes = _marker(header, BOX_ID), _marker(header, AXES_ID)
    if extent is None:
        box.action = axes.action = Marker.DELETE
        return [box, axes]
    centre = Point(x=float(extent.box_center[0]), y=float(extent.box_center[1]),
                   z=float(extent.box_center[2]))
    box.type, box.action = Marker.CUBE, Marker.ADD
    box.pose.position = centre
    q = _quaternion(extent.axes)
    box.pose.orientation.x, box.pose.orientation.y = q[0], q[1]
    box.pose.orientation.z, box.pose.orientation.w = q[2], q[3]
    sizes = np.maximum(extent.principal_sizes, MIN_MARKER_SIZE)
    box.scale.x, box.scale.y, box.scale.z = (float(v) for v in sizes)
    box.color.r, box.color.g, box.color.b, box.color.a = 1.0, 0.55, 0.1, 0.35
    axes.type, axes.action = Marker.LINE_LIST, Marker.ADD
    axes.pose.orientation.w = 1.0
    axes.scale.x = 0.004  # line width, metres
    axes.color.a = 1.0
    for axis, size, colour in zip(extent.axes, sizes, AXIS_COLOURS):
        end = extent.box_center + axis * (size / 2)
        axes.points += [centre, Point(x=float(end[0]), y=float(end[1]), z=float(end[2]))]
        axes.colors += [ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=1.0)] * 2
    return [box, axes]


def target_cloud_msg(header: Header, points: TargetPoints) -> PointCloud2:
    """Return ``/refseg/target_cloud``: the target's points, x y z rgb, in the image's frame."""
    return cloud_msg(points.xyz, points.rgb, header)
