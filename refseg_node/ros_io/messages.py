"""Build the node's output messages from a segmentation result (no ROS graph needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Point, PointStamped
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from refseg_msgs.msg import Region, Segmentation
from refseg_node.perception.cloud import TargetGeometry
from refseg_node.perception.targets import Target
from refseg_node.ros_io.extent_messages import fill_extent, fill_tracking
from refseg_node.ros_io.image_conversion import mono8_msg

MARKER_NAMESPACE = "refseg"


@dataclass(frozen=True)
class FrameResult:
    """Everything the node learnt about one frame for one expression."""

    header: Header
    command: str
    expression: str
    mask: np.ndarray                   # HxW bool, all regions
    target: Target
    threshold: float
    unknown_words: tuple[str, ...]
    inference_time: float
    point: tuple[float, float, float] | None
    note: str = ""                     # why nothing was found or why there is no 3D point
    geometry: TargetGeometry | None = None  # the target's points and extent (with depth)
    no_3d_reason: str = ""             # why there is no 3D point or no extent ("" = both)
    tracked: bool = False              # the mask was carried forward, not the model's
    tracked_age: int = 0               # frames since the model's answer it comes from
    probs: np.ndarray | None = None    # HxW response map of the model (None: not the model's)


def point_stamped(header: Header, xyz: tuple[float, float, float]) -> PointStamped:
    """Return a ``PointStamped`` with ``header`` at ``xyz``."""
    msg = PointStamped()
    msg.header = header
    msg.point = Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))
    return msg


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
    msg.centroid = Point(x=float(target.centroid[0]), y=float(target.centroid[1]), z=0.0)
    x, y, w, h = target.bbox
    msg.bbox = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False)
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
    fill_extent(msg, extent)
    msg.no_3d_reason = "" if extent is not None and result.point is not None else (
        result.no_3d_reason or result.note)
    fill_tracking(msg, result.tracked, result.tracked_age)
    return msg


def region_msg(region) -> Region:
    """Return the ``refseg_msgs/Region`` of a ``targets.Region``."""
    x, y, w, h = region.bbox
    return Region(
        bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False),
        area=int(region.area),
        centroid=Point(x=float(region.centroid[0]), y=float(region.centroid[1]), z=0.0),
        score=float(region.score))


def centroid_msg(result: FrameResult) -> PointStamped:
    """Return the pixel centroid of the primary target (x = column, y = row, z = 0)."""
    return point_stamped(result.header, (*result.target.centroid, 0.0))


def marker_msg(header: Header, xyz: tuple[float, float, float] | None,
               diameter: float) -> Marker:
    """Return a sphere marker at ``xyz``, or a DELETE of that sphere when ``xyz`` is None."""
    msg = Marker()
    msg.header = header
    msg.ns = MARKER_NAMESPACE
    msg.id = 0
    if xyz is None:
        msg.action = Marker.DELETE
        return msg
    msg.type = Marker.SPHERE
    msg.action = Marker.ADD
    msg.pose.position = Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))
    msg.pose.orientation.w = 1.0
    msg.scale.x = msg.scale.y = msg.scale.z = float(diameter)
    msg.color.r, msg.color.g, msg.color.b, msg.color.a = 1.0, 0.2, 0.1, 0.9
    return msg
