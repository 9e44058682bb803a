"""The node's output messages, built from a FrameResult: the one place each field is set.

No ROS graph needed. ``/refseg/segmentation`` (:func:`segmentation_msg`: the target, its regions,
its 3D point and extent, tracking), the centroid, the overlay picture, the target's cloud and the
rviz markers, which share one namespace on ``/refseg/marker``: id 0 the sphere at the target
point, id 1 the target's box (a translucent ``CUBE`` along its principal axes, sized by its
principal extents), id 2 its principal axes (a ``LINE_LIST`` from the box's centre: red the
largest spread, green the second, blue the third, each as long as half the box along it).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, PointStamped, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import Image, PointCloud2, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from refseg_model.drawing import draw_overlay
from refseg_msgs.msg import Region, Segmentation
from refseg_node.perception.cloud import Extent, TargetPoints
from refseg_node.perception.pipeline import FrameResult
from refseg_node.ros_io.image_conversion import bgr8_msg, mono8_msg
from refseg_node.ros_io.pointcloud2 import cloud_msg

MARKER_NAMESPACE = "refseg"
SPHERE_ID, BOX_ID, AXES_ID = 0, 1, 2
AXIS_COLOURS = ((1.0, 0.1, 0.1), (0.1, 0.9, 0.1), (0.2, 0.3, 1.0))
MIN_MARKER_SIZE = 0.002  # metres: rviz draws nothing for a zero scale


def point_stamped(header: Header, xyz: tuple[float, float, float]) -> PointStamped:
    """Return a ``PointStamped`` with ``header`` at ``xyz``."""
    msg = PointStamped()
    msg.header = header
    msg.point = _point(xyz)
    return msg


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def roi_msg(bbox: tuple[int, int, int, int]) -> RegionOfInterest:
    """Return the ``RegionOfInterest`` of an ``(x_offset, y_offset, width, height)`` box."""
    x, y, w, h = bbox
    return RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False)


def segmentation_msg(result: FrameResult) -> Segmentation:
    """Return the ``refseg_msgs/Segmentation`` of ``result``."""
    target = result.target
    msg = Segmentation()
    msg.header = result.header
    msg.command = result.command
    msg.expression = result.expression
    msg.found = bool(target.found)
    msg.score = float(target.score)
    msg.mask = mono8_msg(result.mask, result.header)
    msg.centroid = _point((*target.centroid, 0.0))
    msg.bbox = roi_msg(target.bbox)
    msg.area = int(target.area)
    msg.has_3d = result.point is not None
    if result.point is not None:
        msg.target_point = point_stamped(result.header, result.point)
    else:
        msg.target_point.header = result.header
    msg.num_regions = int(target.num_regions)
    msg.mask_area = int(target.mask_area)
    msg.threshold = float(result.threshold)
    msg.unknown_words = list(result.unknown_words)
    msg.inference_time = float(result.inference_time)
    msg.regions = [region_msg(r) for r in target.regions]
    extent = result.geometry.extent if result.geometry is not None else None
    _set_extent(msg, extent)
    msg.no_3d_reason = "" if extent is not None and result.point is not None else result.reason
    msg.tracked = bool(result.tracked)
    msg.tracked_age = int(result.tracked_age)
    return msg


def _set_extent(msg: Segmentation, extent: Extent | None) -> None:
    """Set the extent fields of ``msg`` (``has_extent`` false when ``extent`` is None)."""
    msg.has_extent = extent is not None
    if extent is None:
        return
    msg.center_3d = _point(extent.center)
    sx, sy, sz = (float(v) for v in extent.size)
    msg.size_3d = Vector3(x=sx, y=sy, z=sz)
    msg.principal_axes = [Vector3(x=float(a[0]), y=float(a[1]), z=float(a[2]))
                          for a in extent.axes]
    msg.principal_sizes = [float(v) for v in extent.principal_sizes]
    msg.num_points = int(extent.num_points)


def region_msg(region) -> Region:
    """Return the ``refseg_msgs/Region`` of a ``targets.Region``."""
    return Region(bbox=roi_msg(region.bbox), area=int(region.area),
                  centroid=_point((*region.centroid, 0.0)), score=float(region.score))


def centroid_msg(result: FrameResult) -> PointStamped:
    """Return the pixel centroid of the primary target (x = column, y = row, z = 0)."""
    return point_stamped(result.header, (*result.target.centroid, 0.0))


def overlay_msg(result: FrameResult, rgb: np.ndarray) -> Image:
    """Return the overlay picture's ``bgr8`` message (the mask, target and words drawn)."""
    target = result.target
    text = result.expression if target.found else f"{result.expression}: not found"
    picture = draw_overlay(rgb, result.mask, text,
                           primary=target.region if target.found else None,
                           centroid=target.centroid if target.found else None)
    return bgr8_msg(picture, result.header)


def _marker(header: Header, marker_id: int) -> Marker:
    msg = Marker()
    msg.header = header
    msg.ns = MARKER_NAMESPACE
    msg.id = marker_id
    return msg


def marker_msg(header: Header, xyz: tuple[float, float, float] | None,
               diameter: float) -> Marker:
    """Return a sphere marker at ``xyz``, or a DELETE of that sphere when ``xyz`` is None."""
    msg = _marker(header, SPHERE_ID)
    if xyz is None:
        msg.action = Marker.DELETE
        return msg
    msg.type = Marker.SPHERE
    msg.action = Marker.ADD
    msg.pose.position = _point(xyz)
    msg.pose.orientation.w = 1.0
    msg.scale.x = msg.scale.y = msg.scale.z = float(diameter)
    msg.color.r, msg.color.g, msg.color.b, msg.color.a = 1.0, 0.2, 0.1, 0.9
    return msg


def _quaternion(axes: np.ndarray) -> tuple[float, float, float, float]:
    x, y, z, w = Rotation.from_matrix(np.asarray(axes, dtype=np.float64).T).as_quat()
    return float(x), float(y), float(z), float(w)


def extent_markers(header: Header, extent: Extent | None) -> list[Marker]:
    """Return the box and axes markers of ``extent``, or DELETEs of both when it is None."""
    box, axes = _marker(header, BOX_ID), _marker(header, AXES_ID)
    if extent is None:
        box.action = axes.action = Marker.DELETE
        return [box, axes]
    centre = _point(extent.box_center)
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
        axes.points += [centre, _point(extent.box_center + axis * (size / 2))]
        axes.colors += [ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=1.0)] * 2
    return [box, axes]


def target_cloud_msg(header: Header, points: TargetPoints) -> PointCloud2:
    """Return ``/refseg/target_cloud``: the target's points, x y z rgb, in the image's frame."""
    return cloud_msg(points.xyz, points.rgb, header)
