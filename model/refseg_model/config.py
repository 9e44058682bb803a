"""Model and training configuration: dataclasses, named presets and YAML files.

``ModelConfig`` describes the network of Fig. 3 of the paper (backbone, Dim, Dtext, Dcls,
spatial channels, input size, stride); it is stored in every checkpoint so inference rebuilds
the model from the checkpoint alone. ``TrainConfig`` holds the optimisation settings
(SGD with momentum, weight decay on weights only, step decay, loss weights) and is kept
apart from the model configuration.

Presets are YAML files in ``refseg_model/presets/``: ``paper`` (VGG-16 as in the paper),
``tabletop`` (the shipped default: the ``convnet`` backbone at stride 8), ``tabletop_mobilenet``
(the first default, MobileNetV3-Small at stride 16), ``tabletop_concat`` (that network with the
paper's concatenation only, the fusion ablation of Table 1) and ``tiny`` (for tests).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from refseg_model.fileio import atomic_write

BACKBONES = ("vgg16", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "convnet", "tiny")
SPATIAL_VARIANTS = ("xy2", "xy8", "none")
FUSIONS = ("concat", "concat_product")
STAGES = ("lowres", "highres")
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


@dataclass
class ModelConfig:
    """Architecture of the text-objects segmentation network.

    Attributes:
        backbone: Convolutional network producing the spatial feature map; one of
            ``BACKBONES``.
        input_size: Side of the square (letterboxed) input image, in pixels.
        stride: Output stride of the backbone (input pixels per response-map cell).
        feat_dim: Dim, channels of the visual feature map (fc8 of VGG-16 in the paper).
        text_dim: Dtext, size of the LSTM hidden state (the expression vector).
        embed_dim: Size of the word embedding fed to the LSTM.
        cls_dim: Dcls, hidden channels of the two-layer 1x1 convolutional classifier.
        spatial: ``"xy2"``: x/y relative coordinates in [-1, 1]; ``"xy8"``: the released
            code's 8 channels (xmin, ymin, xmax, ymax, xctr, yctr, 1/W, 1/H); ``"none"``.
        fusion: How the tiled expression vector meets the visual features. ``"concat"``: the
            paper's concatenation [visual, spatial, text]; ``"concat_product"``: the same plus
            the elementwise product visual * text (needs ``feat_dim == text_dim``), which lets
            the two-layer classifier condition on the words from the first iterations when the
            backbone is trained from random initialisation.
        max_len: Number of tokens per expression (left-padded).
        vocab_size: Number of words in the vocabulary (set from the vocabulary at training).
        freeze_backbone: Keep the convolutional layers fixed during training.
        pretrained: Initialise the backbone from torchvision's ImageNet weights.
        backbone_weights: Optional path of a torchvision state-dict file for the backbone.
        width: Base channel width of the ``convnet`` and ``tiny`` backbones.

    The field defaults are a neutral base for the presets, not a network of their own: neither
    the paper's (``paper``) nor the shipped one (``tabletop``); every preset sets the fields it
    needs and a checkpoint stores all of them. Build a network from a preset
    (``load_config("tabletop").model``), not from ``ModelConfig()``.
    """

    backbone: str = "mobilenet_v3_small"
    input_size: int = 320
    stride: int = 16
    feat_dim: int = 256
    text_dim: int = 256
    embed_dim: int = 256
    cls_dim: int = 128
    spatial: str = "xy8"
    fusion: str = "concat"
    max_len: int = 20
    vocab_size: int = 0
    freeze_backbone: bool = False
    pretrained: bool = False
    backbone_weights: str | None = None
    width: int = 16

    def __post_init__(self) -> None:
        """Check the values."""
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.spatial not in SPATIAL_VARIANTS:
            raise ConfigError(f"unknown spatial {self.spatial!r}; choose one of {SPATIAL_VARIANTS}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; choose one of {FUSIONS}")
        if self.fusion == "concat_product" and self.feat_dim != self.text_dim:
            raise ConfigError(f"fusion concat_product needs feat_dim == text_dim, got "
                              f"{self.feat_dim} and {self.text_dim}")
        for name in ("input_size", "stride", "feat_dim", "text_dim", "embed_dim", "cls_dim",
                     "max_len", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.stride % 2:
            raise ConfigError(f"ModelConfig.stride must be even, got {self.stride}")
        if self.input_size % self.stride:
            raise ConfigError(
                f"ModelConfig.input_size {self.input_size} is not a multiple of stride "
                f"{self.stride}")

    @property
    def spatial_channels(self) -> int:
        """Number of spatial coordinate channels appended to the visual features."""
        return {"xy2": 2, "xy8": 8, "none": 0}[self.spatial]

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict, rejecting unknown keys."""
        return _from_dict(cls, data, "model")


@dataclass
class TrainConfig:
    """Optimisation settings for one training run (both stages).

    The learning rate decays by ``lr_decay_rate`` every ``lr_decay_step`` iterations
    (staircase), restarting at ``lr`` for the high-resolution stage. Weight decay applies to
    weight tensors only (not biases, not BatchNorm). The loss weights follow the released
    code's ratio (foreground 3 : background 1); ``dice_weight`` > 0 adds that much of a
    per-sample soft Dice loss (not the paper's: small objects then weigh as much as large ones).
    ``channels_last`` trains in the NHWC memory layout (oneDNN's faster CPU convolutions; same
    numbers within float rounding).
    """

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0005
    lr_decay_step: int = 6000
    lr_decay_rate: float = 0.1
    backbone_lr_mult: float = 1.0
    batch_size: int = 10
    lowres_iters: int = 18000
    highres_iters: int = 18000
    w_fg: float = 3.0
    w_bg: float = 1.0
    dice_weight: float = 0.0
    grad_clip: float = 0.0
    seed: int = 0
    workers: int = 0
    checkpoint_every: int = 500
    val_every: int = 0
    val_max_samples: int = 500
    log_every: int = 1
    channels_last: bool = True

    def __post_init__(self) -> None:
        """Check the values."""
        for name in ("lr", "batch_size", "lr_decay_step"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("lowres_iters", "highres_iters", "workers", "checkpoint_every", "val_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")

    def stage_iters(self, stage: str) -> int:
        """Return the number of iterations of ``stage``."""
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}; choose one of {STAGES}")
        return self.lowres_iters if stage == "lowres" else self.highres_iters

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys."""
        return _from_dict(cls, data, "train")


@dataclass
class RunConfig:
    """A model configuration and a training configuration, as stored in YAML files."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"model": {...}, "train": {...}}``."""
        return {"model": self.model.to_dict(), "train": self.train.to_dict()}


def _from_dict(cls, data: dict[str, Any], section: str):
    if not isinstance(data, dict):
        raise ConfigError(f"section {section!r} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in section {section!r}; "
                          f"known keys: {sorted(known)}")
    return cls(**data)


def preset_names() -> list[str]:
    """Return the names of the shipped presets."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> RunConfig:
    """Load a preset by name (see :func:`preset_names`) or a YAML file by path.

    The YAML file has two optional sections, ``model`` and ``train``; missing keys keep
    their defaults.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PRESETS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {str(name_or_path)!r}; presets: {preset_names()} "
                              "(or give the path of a YAML file)")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'model' and 'train' sections")
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; expected 'model' and 'train'")
    try:
        return RunConfig(model=ModelConfig.from_dict(data.get("model") or {}),
                         train=TrainConfig.from_dict(data.get("train") or {}))
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{path}: {err}") from err


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write ``config`` as YAML, atomically."""
    atomic_write(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
