"""Model and training configuration: dataclasses, named presets and YAML files.

``ModelConfig`` describes the network of Fig. 3 of the paper (backbone, Dim, Dtext, Dcls,
spatial channels, input size, stride); it is stored in every checkpoint so inference rebuilds
the model from the checkpoint alone. ``TrainConfig`` holds the optimisation settings
(SGD with momentum, weight decay on weights only, step decay, loss weights) and is kept
apart from the model configuration.

Presets are YAML files in ``refseg_model/presets/``: ``paper`` (VGG-16, trained as the released
code trains it: see docs/REPRODUCING.md), ``tabletop`` (the shipped default),
``tabletop_stride8`` (the previous default: 320x320, stride-8 deconvolution),
``tabletop_mobilenet``, ``tabletop_concat`` and ``tiny`` (for tests).

Training runs in up to three stages, ``det`` (box crops, as the released code's detection model),
``lowres`` (coarse labels) and ``highres`` (full resolution). ``TrainConfig.stages`` holds per-stage
overrides of any ``TrainConfig`` field (loss weights, schedule, batch size, frozen layers);
:meth:`TrainConfig.for_stage` resolves them into the configuration one stage trains with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from refseg_model.augment import ExposureDraw
from refseg_model.fileio import atomic_write

BACKBONES = ("vgg16", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "convnet", "tiny")
SPATIAL_VARIANTS = ("xy2", "xy8", "none")
FUSIONS = ("concat", "concat_product")
DECODERS = ("none", "skip")
CONTEXTS = ("none", "relational", "landmark")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # numeric paths: training and inference
STAGES = ("lowres", "highres")
TRAIN_STAGES = ("det", *STAGES)  # the order of a ``--stage all`` run
CHECKPOINT_STAGES = TRAIN_STAGES  # a det checkpoint is scored like a lowres one
BINARIZE = ("resize_then_threshold", "threshold_then_resize")
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


@dataclass
class ModelConfig:
    """Architecture of the text-objects segmentation network.

    Attributes:
        backbone: Convolutional network producing the spatial feature map; one of
            ``BACKBONES``.
        input_width: Width of the (letterboxed) network input, in pixels.
        input_height: Height of the network input; 0 (the default) means ``input_width``, the
            paper's square input, and is resolved to it. 320 x 240 takes a 4:3 camera frame
            without padding. Configurations and checkpoints written before the rename say
            ``input_size`` for the width (and ``input_height: 0`` for a square); they load.
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
        vocab_size: Number of words in the vocabulary. Not set by hand: ``build_model(cfg,
            vocab_size)`` gives the built network's config the vocabulary's length, and a
            checkpoint stores it.
        freeze_backbone: Keep the convolutional layers fixed during training.
        pretrained: Initialise the backbone from torchvision's ImageNet weights.
        backbone_weights: Optional path of a torchvision state-dict file for the backbone.
        width: Base channel width of the ``convnet`` and ``tiny`` backbones.
        decoder: ``"none"``: the paper's upsampling of the coarse response map by the
            bilinear-initialised deconvolution. ``"skip"``: a light text-conditioned decoder
            that upsamples the classifier's hidden map and refines it with the backbone's
            stride-4 and stride-2 features (``convnet`` only), its logits added to the
            upsampled response map.
        decoder_dim: Channels of the decoder at stride 4 (half of it at stride 2).
        lstm_forget_bias: Initial bias of the LSTM's forget gate (the released code's
            ``BasicLSTMCell`` adds 1.0; 0.0 keeps PyTorch's initialisation).
        learned_pad: Whether ``<pad>`` has a learned embedding row (the released code's
            ``embedding_lookup``); ``False`` pins it to zeros.
        binarize: How a prediction becomes a mask at the original size.
            ``"resize_then_threshold"``: probabilities resized, then >= threshold;
            ``"threshold_then_resize"`` (the released test script): thresholded on the square
            input, the 0/1 map resized bilinearly, every pixel > 0 foreground.
        keep_aspect: ``False``: every image is letterboxed into the ``input_height x
            input_width`` canvas (the paper). ``True``: the network input follows each image's
            aspect at about the same pixel budget (:meth:`input_shape_for`; the network is
            fully convolutional), so a 16:9 camera frame is not letterboxed into a 4:3 canvas.
        context: ``"none"``: the paper's classifier, each location judged on its own.
            ``"relational"``: a second reasoning step over the classifier's hidden map that lets
            each location see the others (``network.RelationalContext``), for relations,
            positions and size words.
            ``"landmark"``: the same, and the landmark of a relation ("the cup next to *the
            bowl*": the words after the last relation word) grounded by the same classifier
            on its own, its map turned into near / left / right / above / below / present
            channels that the reasoning step reads (``network.LandmarkGrounding``).
        exposure_range: ``None``: the frame goes to the network as it comes. ``[low, high]``:
            a frame whose mean luma (0-255) lies outside this range (the 5-95% range of the
            training scenes' mean luma) is scaled by a gain, clipped to x0.6-x1.7, that brings it
            to the nearest edge; a frame inside it is left as it is
            (:func:`refseg_model.preprocess.compensate_exposure`; inference only, training
            learns from the photometric augmentation).

    The field defaults are a neutral base for the presets, not a network of their own: neither
    the paper's (``paper``) nor the shipped one (``tabletop``); every preset sets the fields it
    needs and a checkpoint stores all of them. Build a network from a preset
    (``load_config("tabletop").model``), not from ``ModelConfig()``.
    """

    backbone: str = "mobilenet_v3_small"
    input_width: int = 320
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
    input_height: int = 0
    decoder: str = "none"
    decoder_dim: int = 48
    lstm_forget_bias: float = 0.0
    learned_pad: bool = False
    binarize: str = "resize_then_threshold"
    keep_aspect: bool = False
    context: str = "none"
    exposure_range: list[float] | None = None

    def __post_init__(self) -> None:
        """Check the values."""
        if self.exposure_range is not None:
            bounds = list(self.exposure_range)
            if len(bounds) != 2 or not all(isinstance(v, (int, float)) and not
                                           isinstance(v, bool) for v in bounds) \
                    or not 0 < bounds[0] < bounds[1] <= 255:
                raise ConfigError(f"ModelConfig.exposure_range must be [low, high] with "
                                  f"0 < low < high <= 255, got {self.exposure_range!r}")
            self.exposure_range = [float(v) for v in bounds]
        if self.context not in CONTEXTS:
            raise ConfigError(f"unknown context {self.context!r}; choose one of {CONTEXTS}")
        if self.binarize not in BINARIZE:
            raise ConfigError(f"unknown binarize {self.binarize!r}; choose one of {BINARIZE}")
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.spatial not in SPATIAL_VARIANTS:
            raise ConfigError(f"unknown spatial {self.spatial!r}; choose one of {SPATIAL_VARIANTS}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; choose one of {FUSIONS}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {self.decoder!r}; choose one of {DECODERS}")
        if self.decoder == "skip" and self.backbone != "convnet":
            raise ConfigError(f"decoder skip needs backbone convnet, got {self.backbone!r}")
        if not isinstance(self.input_height, int) or self.input_height < 0:
            raise ConfigError(f"ModelConfig.input_height must be >= 0, got {self.input_height!r}")
        if self.input_height == 0:
            self.input_height = self.input_width
        if self.fusion == "concat_product" and self.feat_dim != self.text_dim:
            raise ConfigError(f"fusion concat_product needs feat_dim == text_dim, got "
                              f"{self.feat_dim} and {self.text_dim}")
        for name in ("input_width", "stride", "feat_dim", "text_dim", "embed_dim", "cls_dim",
                     "max_len", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.stride % 2:
            raise ConfigError(f"ModelConfig.stride must be even, got {self.stride}")
        if self.input_width % self.stride or self.input_height % self.stride:
            raise ConfigError(
                f"ModelConfig input {self.input_height}x{self.input_width} (height x width) is "
                f"not a multiple of stride {self.stride}")

    @property
    def input_shape(self) -> tuple[int, int]:
        """The network input as (height, width)."""
        return self.input_height, self.input_width

    def input_shape_for(self, height: int, width: int) -> tuple[int, int]:
        """Return the network input (height, width) for an image of ``height x width``.

        :attr:`input_shape` unless ``keep_aspect``; then the shape of the image's aspect with
        about ``input_height * input_width`` pixels, each side a multiple of ``stride``
        (:func:`refseg_model.preprocess.aspect_input_shape`).
        """
        if not self.keep_aspect:
            return self.input_shape
        from refseg_model.preprocess import aspect_input_shape
        return aspect_input_shape(height, width, self.input_height * self.input_width,
                                  self.stride)

    @property
    def spatial_channels(self) -> int:
        """Number of spatial coordinate channels appended to the visual features."""
        return {"xy2": 2, "xy8": 8, "none": 0}[self.spatial]

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict, rejecting unknown keys; the old key ``input_size`` is the width."""
        data = dict(data)
        if "input_size" in data:
            if "input_width" in data:
                raise ConfigError("section 'model' has both input_size (the old name) and "
                                  "input_width; keep input_width")
            data["input_width"] = data.pop("input_size")
        return _from_dict(cls, data, "model")


@dataclass
class DetConfig:
    """The detection stage's samples and start (``refseg_model.detection``; ``TrainConfig.det``).

    Attributes:
        crop_size: Side of the square box crops, in pixels.
        pos_iou: Positives are the ground-truth box and candidates with IoU >= this.
        neg_iou: Negatives are candidates with IoU < this.
        neg_ratio: Negatives kept per positive.
        proposals: Folder under the data root with one ``<image_id>.txt`` of
            ``xmin ymin xmax ymax`` rows per image (the released EdgeBoxes files).
        random_boxes: Without that folder: random candidate boxes per image, ...
        jitter_boxes: ... plus this many jittered copies of each annotated box.
        released_init: Initialise the text encoder and classifier as the released detection
            script does (a freshly built model only).

    YAML files and checkpoints written before this section existed have the same settings as
    flat ``det_*`` keys of ``train`` (``det_crop_size``...); they load.
    """

    crop_size: int = 224
    pos_iou: float = 0.7
    neg_iou: float = 1e-6
    neg_ratio: float = 1.0
    proposals: str = "referit_edgeboxes_top100"
    random_boxes: int = 50
    jitter_boxes: int = 10
    released_init: bool = True

    def __post_init__(self) -> None:
        """Check the values."""
        if self.crop_size <= 0:
            raise ConfigError(f"DetConfig.crop_size must be positive, got {self.crop_size}")
        for name in ("neg_ratio", "random_boxes", "jitter_boxes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"DetConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.pos_iou <= 1.0 or not 0.0 < self.neg_iou <= self.pos_iou:
            raise ConfigError(f"DetConfig: need 0 < neg_iou <= pos_iou <= 1, got "
                              f"{self.neg_iou} and {self.pos_iou}")


LEGACY_DET_KEYS = {f"det_{f.name}": f.name for f in dataclasses.fields(DetConfig)}


@dataclass
class TrainConfig:
    """Optimisation settings of one training run (every stage: det, lowres, highres).

    Attributes:
        lr, momentum, weight_decay: SGD with momentum (the paper's) or AdamW (``optimizer``);
            weight decay applies to weight tensors only (not biases, not BatchNorm), and to the
            word embedding only with ``embedding_weight_decay`` (the released code: not).
        lr_decay_step, lr_decay_rate, schedule, warmup_iters: ``step``: the staircase decay by
            ``lr_decay_rate`` every ``lr_decay_step`` iterations; ``cosine``: from ``lr`` to 0
            over the stage; both after a linear warm-up of ``warmup_iters``, restarting at
            each stage.
        backbone_lr_mult: Learning-rate factor of the backbone's parameters.
        batch_size: Samples per step and process.
        det_iters, lowres_iters, highres_iters: Iterations of each stage.
        w_fg, w_bg: Weights of foreground and background pixels in the logistic loss (the
            released code's 3 : 1).
        dice_weight: > 0 adds that much of a per-sample soft Dice loss (not the paper's).
        aux_weight: > 0 adds that much of the coarse response map's loss against the coarse
            labels to the high-resolution stage (deep supervision of the grounding).
        grad_clip: Gradient-norm clip (0: none).
        seed: Seeds Python, NumPy, torch and the data order.
        workers: Data-loader worker processes.
        checkpoint_every, val_every, val_max_samples, log_every: ``last.pt`` every that many
            steps; validation at every checkpoint or, if ``val_every`` > 0, every that many
            steps (always at a stage's end) on at most ``val_max_samples`` samples; a
            ``metrics.jsonl`` line every ``log_every`` steps.
        channels_last: Train in the NHWC memory layout (oneDNN's faster CPU convolutions).
        precision: ``auto`` (the training policy of ``refseg_model.fastpath.auto_precision``:
            bf16 autocast on CUDA, fp16 where the GPU has no bf16, bf16 on CPUs with AMX,
            float32 on every other CPU, AVX-512 BF16 without AMX included), or ``fp32``,
            ``bf16``, ``fp16`` (CUDA).
        expressions_per_image: > 1 fills a batch with that many expressions of each of
            ``batch_size / expressions_per_image`` images: one backbone pass per image.
        time_budget_s: > 0 ends each stage after that many seconds (a cosine schedule then
            runs over the time; such a stage does not resume exactly).
        freeze_head: Keep the backbone's head (fc6-fc8 of VGG-16) fixed as well as the frozen
            body (the released detection stage).
        photometric: Camera-like photometric augmentation of the training images
            (:mod:`refseg_model.augment`: exposure, gamma, white balance, noise, blur, JPEG;
            never enough to rename a colour).
        exposure: Overrides of :class:`refseg_model.augment.ExposureDraw` (``low``, ``high``,
            ``prob``, ``two_sided``): how the photometric augmentation draws exposure gains.
        kind_weights: Expression kind -> draw weight (e.g. ``{"relation": 3}``) of an image's
            expressions when ``expressions_per_image`` > 1 (default weight 1).
        det: The detection stage's samples and initialisation (:class:`DetConfig`).
        stages: Stage name -> overrides of these fields for that stage.
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
    optimizer: str = "sgd"
    schedule: str = "step"
    warmup_iters: int = 0
    aux_weight: float = 0.0
    precision: str = "auto"
    expressions_per_image: int = 1
    time_budget_s: float = 0.0
    embedding_weight_decay: bool = True
    freeze_head: bool = False
    det_iters: int = 25000
    det: DetConfig = field(default_factory=DetConfig)
    photometric: bool = False
    exposure: dict[str, Any] = field(default_factory=dict)
    kind_weights: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the values (and that every per-stage override resolves)."""
        if any(not isinstance(w, (int, float)) or w <= 0 for w in self.kind_weights.values()):
            raise ConfigError(f"TrainConfig.kind_weights must map kinds to positive weights, "
                              f"got {self.kind_weights!r}")
        try:
            ExposureDraw(**self.exposure)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"TrainConfig.exposure: {err}") from None
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"TrainConfig.{name} must be one of {allowed}, got "
                                  f"{getattr(self, name)!r}")
        if self.warmup_iters < 0 or self.aux_weight < 0:
            raise ConfigError("TrainConfig.warmup_iters and aux_weight must be >= 0")
        per_image = self.expressions_per_image
        if per_image < 1 or self.batch_size % per_image:
            raise ConfigError(f"TrainConfig.expressions_per_image ({per_image}) must be >= 1 "
                              f"and divide batch_size ({self.batch_size})")
        if not isinstance(self.det, DetConfig):
            raise ConfigError(f"TrainConfig.det must be a DetConfig, got "
                              f"{type(self.det).__name__}")
        for name in ("lr", "batch_size", "lr_decay_step"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("det_iters", "lowres_iters", "highres_iters", "workers", "checkpoint_every",
                     "val_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not isinstance(self.stages, dict):
            raise ConfigError(f"TrainConfig.stages must map stage names to overrides, got "
                              f"{type(self.stages).__name__}")
        for stage, overrides in self.stages.items():
            if stage not in TRAIN_STAGES:
                raise ConfigError(f"TrainConfig.stages: unknown stage {stage!r}; choose from "
                                  f"{TRAIN_STAGES}")
            if not isinstance(overrides, dict) or "stages" in overrides:
                raise ConfigError(f"TrainConfig.stages.{stage} must be a mapping of train "
                                  "fields (without 'stages')")
        # older files' flat det_* overrides in the nested form (a new dict: the caller's stays)
        self.stages = {stage: _nest_det(overrides, f"train.stages.{stage}")
                       for stage, overrides in self.stages.items()}
        for stage, overrides in self.stages.items():
            if overrides:
                self.for_stage(stage)

    def for_stage(self, stage: str) -> TrainConfig:
        """Return the configuration ``stage`` trains with: this one with its overrides applied.

        The result has no ``stages`` of its own; an unknown key raises :class:`ConfigError`.
        """
        if stage not in TRAIN_STAGES:
            raise ConfigError(f"unknown stage {stage!r}; choose one of {TRAIN_STAGES}")
        overrides = _nest_det(self.stages.get(stage, {}), f"train.stages.{stage}")
        merged = self.to_dict()
        merged["det"] = {**merged["det"], **overrides.pop("det", {})}
        merged.update(overrides, stages={})
        try:
            return _train_from_dict(merged, f"train.stages.{stage}")
        except TypeError as err:
            raise ConfigError(f"train.stages.{stage}: {err}") from err

    def stage_iters(self, stage: str) -> int:
        """Return the number of iterations of ``stage``."""
        if stage not in TRAIN_STAGES:
            raise ConfigError(f"unknown stage {stage!r}; choose one of {TRAIN_STAGES}")
        return getattr(self, f"{stage}_iters")

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-able dict."""
        data = dataclasses.asdict(self)
        data["stages"] = {k: dict(v) for k, v in self.stages.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys; flat ``det_*`` keys go to ``det``."""
        return _train_from_dict(data, "train")


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


def _nest_det(data: dict[str, Any], section: str) -> dict[str, Any]:
    """Return ``data`` with the flat ``det_*`` keys of older files moved under ``det``."""
    if not isinstance(data, dict):
        raise ConfigError(f"section {section!r} must be a mapping, got {type(data).__name__}")
    data = dict(data)
    det = data.get("det", {})
    if not isinstance(det, dict):
        raise ConfigError(f"{section}.det must be a mapping, got {type(det).__name__}")
    det = dict(det)
    for old, new in LEGACY_DET_KEYS.items():
        if old in data:
            if new in det:
                raise ConfigError(f"section {section!r} sets both {old} (the old name) and "
                                  f"det.{new}; keep det.{new}")
            det[new] = data.pop(old)
    if det or "det" in data:
        data["det"] = det
    return data


def _train_from_dict(data: dict[str, Any], section: str) -> TrainConfig:
    data = _nest_det(data, section)
    if "det" in data:
        data["det"] = _from_dict(DetConfig, data["det"], f"{section}.det")
    return _from_dict(TrainConfig, data, section)


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
