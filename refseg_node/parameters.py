"""The node's parameters, declared in one place, and their validation.

``config/refseg.params.yaml`` sets the same names. Parameters marked ``live`` take effect at once
when set on a running node; the others (model, device, topics, QoS) at the next configure
(``cleanup`` then ``configure``, or a restart).
"""

from __future__ import annotations

from dataclasses import dataclass

from refseg_node.command_parser import DEFAULT_MAX_LENGTH
from refseg_node.image_conversion import DEFAULT_MAX_PIXELS

MODES = ("continuous", "once")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
IMAGE_QOS = ("sensor_data", "reliable")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: name, default (its type fixes the parameter's type), meaning."""

    name: str
    default: object
    description: str
    live: bool = False


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("checkpoint", "", "model checkpoint file; empty = the shipped default "
                  "(refseg_model.default_checkpoint_path())"),
    ParameterSpec("device", "auto", "auto, cpu, cuda or cuda:N"),
    ParameterSpec("precision", "auto", "numeric path of the model: auto (the fastest that keeps "
                  "the answers: bf16 on CPUs with AMX, or AVX-512 BF16 where it measures faster "
                  "than fp32; fp16 on CUDA; fp32 elsewhere; the node logs the choice and why), "
                  "fp32, bf16 or fp16 (CUDA only)"),
    ParameterSpec("channels_last", True, "run the convolutions in NHWC memory layout (faster "
                  "for the depthwise convolutions of the default model)"),
    ParameterSpec("threshold", 0.5, "probability above which a pixel is in the mask, in [0, 1]",
                  live=True),
    ParameterSpec("mode", "continuous", "continuous: segment every new frame for the active "
                  "query; once: only the next frame after each query", live=True),
    ParameterSpec("max_rate_hz", 0.0, "most segmentations per second; 0 = as frames come",
                  live=True),
    ParameterSpec("image_qos", "sensor_data", "QoS of the image, depth and camera_info "
                  "subscriptions: sensor_data (best effort, matches any camera) or reliable"),
    ParameterSpec("image_topic", "/camera/image_raw", "colour image topic"),
    ParameterSpec("depth_topic", "/camera/depth/image_raw", "aligned depth image topic "
                  "(16UC1 mm or 32FC1 m)"),
    ParameterSpec("camera_info_topic", "/camera/camera_info", "CameraInfo of the colour image"),
    ParameterSpec("depth_sync_tolerance", 0.05, "most seconds between a colour frame's stamp "
                  "and the depth frame paired with it", live=True),
    ParameterSpec("max_query_length", DEFAULT_MAX_LENGTH, "longest expression in characters; "
                  "longer ones are cut at a word boundary", live=True),
    ParameterSpec("max_image_pixels", DEFAULT_MAX_PIXELS, "images with more pixels are refused",
                  live=True),
    ParameterSpec("publish_overlay", True, "draw and publish /refseg/overlay (when subscribed)",
                  live=True),
    ParameterSpec("marker_scale", 0.06, "diameter in metres of the /refseg/marker sphere",
                  live=True),
    ParameterSpec("log_period", 5.0, "seconds between two repeated warnings of the same kind",
                  live=True),
    ParameterSpec("autostart", True, "configure and activate the lifecycle node at start-up"),
)

SPECS = {spec.name: spec for spec in PARAMETERS}


class SettingsError(ValueError):
    """A parameter value the node cannot use."""


@dataclass(frozen=True)
class Settings:
    """Validated parameter values."""

    checkpoint: str
    device: str
    precision: str
    channels_last: bool
    threshold: float
    mode: str
    max_rate_hz: float
    image_qos: str
    image_topic: str
    depth_topic: str
    camera_info_topic: str
    depth_sync_tolerance: float
    max_query_length: int
    max_image_pixels: int
    publish_overlay: bool
    marker_scale: float
    log_period: float
    autostart: bool

    @classmethod
    def from_values(cls, values: dict[str, object]) -> Settings:
        """Validate a ``{name: value}`` dict holding every parameter of :data:`PARAMETERS`."""
        for name in SPECS:
            check_value(name, values[name])
        return cls(**{name: values[name] for name in SPECS})


def check_value(name: str, value: object) -> None:
    """Raise :class:`SettingsError` when ``value`` is not usable for parameter ``name``."""
    if name not in SPECS:
        raise SettingsError(f"unknown parameter {name!r}")
    if name == "device":
        ok = value in ("auto", "cpu", "cuda") or (
            isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit())
        if not ok:
            raise SettingsError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
    elif name == "precision" and value not in PRECISIONS:
        raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    elif name == "threshold" and not 0.0 <= float(value) <= 1.0:
        raise SettingsError(f"threshold must be a probability in [0, 1], got {value}")
    elif name == "mode" and value not in MODES:
        raise SettingsError(f"mode must be one of {', '.join(MODES)}, got {value!r}")
    elif name == "image_qos" and value not in IMAGE_QOS:
        raise SettingsError(f"image_qos must be one of {', '.join(IMAGE_QOS)}, got {value!r}")
    elif name in ("max_rate_hz", "depth_sync_tolerance", "log_period") and float(value) < 0:
        raise SettingsError(f"{name} must be >= 0, got {value}")
    elif name in ("max_query_length", "max_image_pixels") and int(value) < 1:
        raise SettingsError(f"{name} must be >= 1, got {value}")
    elif name == "marker_scale" and float(value) <= 0:
        raise SettingsError(f"marker_scale must be > 0, got {value}")
    elif name.endswith("_topic") and not value:
        raise SettingsError(f"{name} must not be empty")
