"""The node's parameters: one spec each, from which the descriptors and the settings are made.

A :class:`ParameterSpec` holds a parameter's default (its Python type is the parameter's type),
its allowed values (``choices``, or a ``minimum`` / ``maximum``), whether it is ``live`` (takes
effect at once on a running node) or applied at the next configure (model, device, topics, QoS:
``cleanup`` then ``configure``, or a restart), and its description. From the specs come the
``ParameterDescriptor`` of each declaration (ranges, ``read_only``), the checks of
:func:`check_value` and the frozen :class:`Settings` dataclass the node reads.

``config/refseg.params.yaml`` holds only what a deployment sets (checkpoint, device, topics);
every other parameter keeps the default written here.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)

from refseg_model.config import PRECISIONS
from refseg_node.language.command_parser import DEFAULT_MAX_LENGTH
from refseg_node.ros_io.image_conversion import DEFAULT_MAX_PIXELS

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
_INT_MAX = 2**63 - 1


class SettingsError(ValueError):
    """A parameter value the node cannot use."""


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: its default (whose type is the parameter's), limits, liveness, meaning."""

    name: str
    default: bool | int | float | str
    description: str
    live: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None       # inclusive
    maximum: float | None = None       # inclusive
    positive: bool = False             # strictly above ``minimum`` (0)
    read_only: bool = False            # only settable at start-up (-p, params file)
    check: Callable[[object], str | None] | None = None  # extra check: the error, or None

    @property
    def type(self) -> type:
        """Return the Python type of the parameter's values."""
        return type(self.default)

    def descriptor(self) -> ParameterDescriptor:
        """Return the ``ParameterDescriptor`` the node declares this parameter with."""
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        if not self.live and not self.read_only:
            text += " (applied on configure)"
        descriptor = ParameterDescriptor(name=self.name, type=_TYPES[self.type],
                                         description=text, read_only=self.read_only)
        if self.choices:
            descriptor.additional_constraints = f"one of: {', '.join(self.choices)}"
        if self.minimum is not None or self.maximum is not None:
            if self.type is int:
                descriptor.integer_range = [IntegerRange(
                    from_value=int(self.minimum if self.minimum is not None else -_INT_MAX),
                    to_value=int(self.maximum if self.maximum is not None else _INT_MAX),
                    step=1)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(self.minimum if self.minimum is not None
                                     else -sys.float_info.max),
                    to_value=float(self.maximum if self.maximum is not None
                                   else sys.float_info.max),
                    step=0.0)]
        return descriptor

    def validate(self, value: object) -> None:
        """Raise :class:`SettingsError` when ``value`` is not usable for this parameter."""
        name = self.name
        if type(value) is not self.type:  # ROS parameters are strictly typed: 0 is not 0.0
            raise SettingsError(f"{name} must be a {self.type.__name__}, got {value!r}")
        if self.choices and value not in self.choices:
            raise SettingsError(f"{name} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.minimum is not None and value < self.minimum or (
                self.positive and value <= self.minimum):
            bound = f"> {self.minimum:g}" if self.positive else f">= {self.minimum:g}"
            if self.maximum is not None:
                bound = f"in [{self.minimum:g}, {self.maximum:g}]"
            raise SettingsError(f"{name} must be {bound}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise SettingsError(f"{name} must be in [{self.minimum:g}, {self.maximum:g}], "
                                f"got {value}")
        if self.check is not None:
            error = self.check(value)
            if error:
                raise SettingsError(f"{name} {error}, got {value!r}")


def _device_error(value) -> str | None:
    return None if _DEVICE.fullmatch(value) else "must be auto, cpu, cuda or cuda:N"


def _not_empty(value) -> str | None:
    return None if value else "must not be empty"


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("checkpoint", "", "model checkpoint file; empty = the shipped default "
                  "(refseg_model.default_checkpoint_path())"),
    ParameterSpec("device", "auto", "device of the model: auto, cpu, cuda or cuda:N",
                  check=_device_error),
    ParameterSpec("precision", "auto", "numeric path of the model: auto (the fastest that "
                  "keeps the answers: bf16 on CPUs with AMX, or AVX-512 BF16 where it measures "
                  "faster than fp32; fp16 on CUDA; fp32 elsewhere; the node logs the choice and "
                  "why), fp32, bf16 or fp16 (CUDA only)",
                  choices=PRECISIONS),
    ParameterSpec("channels_last", True, "run the convolutions in NHWC memory layout (faster "
                  "for the convolutions of the default model on CPUs)"),
    ParameterSpec("threshold", -1.0, "probability above which a pixel is in the mask; -1 = "
                  "the checkpoint's calibrated threshold (0.5 when it has none)",
                  live=True, minimum=-1.0, maximum=1.0),
    ParameterSpec("mode", "continuous", "continuous: segment every new frame for the active "
                  "query; once: only the next frame after each query", live=True,
                  choices=("continuous", "once")),
    ParameterSpec("max_rate_hz", 0.0, "most segmentations per second; 0 = as frames come",
                  live=True, minimum=0.0),
    ParameterSpec("image_qos", "auto", "reliability of the image, depth and camera_info "
                  "subscriptions: auto (that of the publishers found on each topic), "
                  "sensor_data (best effort, matches any camera) or reliable",
                  choices=("auto", "sensor_data", "reliable")),
    ParameterSpec("image_transport", "raw", "raw: sensor_msgs/Image on the image topic; "
                  "compressed: sensor_msgs/CompressedImage (JPEG, PNG) on <image topic>/compressed",
                  choices=("raw", "compressed")),
    ParameterSpec("image_topic", "camera/image_raw", "colour image topic (or remap 'image'); "
                  "a relative name is in the node's namespace (/camera/image_raw without one)",
                  check=_not_empty),
    ParameterSpec("depth_topic", "camera/depth/image_raw", "aligned depth image topic "
                  "(16UC1 mm or 32FC1 m; or remap 'depth'), relative to the node's namespace "
                  "unless absolute", check=_not_empty),
    ParameterSpec("camera_info_topic", "camera/camera_info", "CameraInfo of the colour image "
                  "(or remap 'camera_info'), relative to the node's namespace unless absolute",
                  check=_not_empty),
    ParameterSpec("depth_sync_tolerance", 0.05, "most seconds between a colour frame's stamp "
                  "and the depth frame paired with it", live=True, minimum=0.0),
    ParameterSpec("depth_wait", 0.2, "most seconds after a colour frame arrives that its answer "
                  "waits for the depth frame of its stamp (depth and colour reach the node in no "
                  "fixed order); 0 = pair with what has arrived", live=True, minimum=0.0),
    ParameterSpec("max_query_length", DEFAULT_MAX_LENGTH, "longest expression in characters; "
                  "longer ones are cut at a word boundary", live=True, minimum=1),
    ParameterSpec("max_image_pixels", DEFAULT_MAX_PIXELS, "images with more pixels are refused",
                  live=True, minimum=1),
    ParameterSpec("publish_overlay", True, "draw and publish /refseg/overlay (when subscribed)",
                  live=True),
    ParameterSpec("marker_scale", 0.06, "diameter in metres of the /refseg/marker sphere",
                  live=True, minimum=0.0, positive=True),
    ParameterSpec("max_regions", 64, "most regions listed in Segmentation.regions (ranked, "
                  "primary first); 0 = all", live=True, minimum=0),
    ParameterSpec("frame_timeout", 5.0, "seconds a matched image publisher may send nothing "
                  "before one warning names the fix; 0 = never warn", live=True, minimum=0.0),
    ParameterSpec("log_period", 5.0, "seconds between two repeated warnings of the same kind",
                  live=True, minimum=0.0),
    # The target's points and extent (refseg_node.perception.cloud) and the mask tracker (tracking).
    ParameterSpec("cloud_erode_px", 2, "pixels taken off the target's border before its points "
                  "are back-projected (edge pixels mix the target's and the background's depth)",
                  live=True, minimum=0, maximum=50),
    ParameterSpec("cloud_outlier_sigmas", 3.0, "a target pixel is kept when its depth is within "
                  "this many robust standard deviations (1.4826 x MAD) of the target's median "
                  "depth", live=True, minimum=0.0, positive=True),
    ParameterSpec("cloud_stride", 1, "keep every n-th pixel in rows and columns for "
                  "/refseg/target_cloud and the 3D extent (1 = all)", live=True, minimum=1),
    ParameterSpec("cloud_voxel", 0.0, "metres of a voxel grid that merges the target's points "
                  "(their mean; 0 = none)", live=True, minimum=0.0),
    ParameterSpec("cloud_min_points", 30, "fewer target points give no 3D extent (has_extent "
                  "false, no_3d_reason says why)", live=True, minimum=3),
    ParameterSpec("tracking", True, "carry the last mask forward (optical flow) onto the frames "
                  "that arrive while the model is busy, marked tracked in Segmentation "
                  "(continuous mode)", live=True),
    ParameterSpec("tracking_max_age", 0, "frames after the model's answer when a carried mask "
                  "is dropped (0 = keep it until the next answer or until the track is lost)",
                  live=True, minimum=0),
    ParameterSpec("min_inference_time", 0.0, "testing and throttling aid: seconds each model "
                  "answer takes at least (the worker waits out the rest), so that a fast model "
                  "behaves like a slow one (the paper preset on a CPU takes about 1 s); 0 = off",
                  live=True, minimum=0.0),
    ParameterSpec("autostart", True, "configure and activate the lifecycle node at start-up",
                  read_only=True),
)

SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}


def check_value(name: str, value: object) -> None:
    """Raise :class:`SettingsError` when ``value`` is not usable for parameter ``name``."""
    if name not in SPECS:
        raise SettingsError(f"unknown parameter {name!r}")
    SPECS[name].validate(value)


@dataclass(frozen=True)
class Settings:
    """Validated parameter values: one field per :data:`PARAMETERS` entry, in its order.

    What each means is its ``ParameterSpec``'s description (``ros2 param describe``);
    ``tests/node/test_parameters.py`` keeps the fields and the specs in step.
    """

    checkpoint: str
    device: str
    precision: str
    channels_last: bool
    threshold: float
    mode: str
    max_rate_hz: float
    image_qos: str
    image_transport: str
    image_topic: str
    depth_topic: str
    camera_info_topic: str
    depth_sync_tolerance: float
    depth_wait: float
    max_query_length: int
    max_image_pixels: int
    publish_overlay: bool
    marker_scale: float
    max_regions: int
    frame_timeout: float
    log_period: float
    cloud_erode_px: int
    cloud_outlier_sigmas: float
    cloud_stride: int
    cloud_voxel: float
    cloud_min_points: int
    tracking: bool
    tracking_max_age: int
    min_inference_time: float
    autostart: bool

    @classmethod
    def from_values(cls, values: dict[str, object]) -> Settings:
        """Validate a ``{name: value}`` dict holding every parameter of :data:`PARAMETERS`."""
        for name in SPECS:
            check_value(name, values[name])
        return cls(**{name: values[name] for name in SPECS})


@dataclass(frozen=True)
class Update:
    """The outcome of a parameter change: refused (``error``) or the new settings."""

    error: str | None
    settings: object | None = None      # the Settings with the live values applied
    later: tuple[str, ...] = ()         # names that take effect at the next configure


def update_settings(settings, changes: dict[str, object]) -> Update:
    """Check a parameter change ``{name: value}`` and apply its live values to ``settings``.

    Names that are not the node's parameters are ignored; one bad value refuses the whole
    change. ``settings`` None (not configured yet) stays None: the values are read on configure.
    """
    ours = {name: value for name, value in changes.items() if name in SPECS}
    for name, value in ours.items():
        try:
            check_value(name, value)
        except SettingsError as err:
            return Update(str(err))
    if settings is None:
        return Update(None)
    live = {name: value for name, value in ours.items() if SPECS[name].live}
    later = tuple(name for name in ours if not SPECS[name].live)
    return Update(None, dataclasses.replace(settings, **live) if live else settings, later)
