"""Convolutional backbones producing the spatial feature map (Dim channels at stride s).

Each backbone is a ``body`` (the convolutional layers, frozen by ``freeze_backbone``) and a
``head`` producing Dim channels: for ``vgg16`` the head is fc6 / fc7 / fc8 of VGG-16 written
as convolutions (fc6 a 7x7 convolution with padding 3, so 512x512 -> 16x16), as in the paper;
for the light backbones it is a 1x1 convolution (the counterpart of fc8).

ImageNet weights come from torchvision's weights enums when ``pretrained`` is set, or from a
local file (``backbone_weights``: a torchvision state dict of the full classification model).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from .config import ConfigError, ModelConfig

# torchvision's ImageNet models take (x / 255 - mean) / std; the paper's preprocessing
# subtracts the mean in 0..255. Dividing by 255 * std bridges the two.
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneWeightsError(RuntimeError):
    """ImageNet weights for the backbone could not be obtained."""


class Backbone(nn.Module):
    """Image (mean-subtracted, 0..255 scale) -> feature map of Dim channels at stride s."""

    def __init__(self, body: nn.Module, head: nn.Module, stride: int,
                 taps: dict[int, tuple[int, int]] | None = None) -> None:
        """Wrap ``body`` (convolutional layers) and ``head`` (projection to Dim).

        ``taps`` maps the index of a layer of a ``Sequential`` body to (stride, channels) of its
        output: the intermediate feature maps a decoder reads (:meth:`forward_with_skips`).
        """
        super().__init__()
        self.body = body
        self.head = head
        self.stride = stride
        self.taps = dict(taps or {})
        scale = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD]).view(1, 3, 1, 1)
        self.register_buffer("input_scale", scale, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return the feature map (B x Dim x H/s x W/s)."""
        return self.head(self.body(images * self.input_scale))

    def forward_with_skips(self, images: torch.Tensor
                           ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Return the feature map and ``{stride: feature map}`` of the body's tapped layers."""
        x = images * self.input_scale
        skips: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.body):
            x = layer(x)
            if index in self.taps:
                skips[self.taps[index][0]] = x
        return self.head(x), skips


def _torchvision_model(cfg: ModelConfig, **kwargs) -> nn.Module:
    """Build the torchvision classification model, with ImageNet weights if asked."""
    builders = {
        "vgg16": (tvm.vgg16, "VGG16_Weights"),
        "mobilenet_v3_large": (tvm.mobilenet_v3_large, "MobileNet_V3_Large_Weights"),
        "mobilenet_v3_small": (tvm.mobilenet_v3_small, "MobileNet_V3_Small_Weights"),
        "resnet18": (tvm.resnet18, "ResNet18_Weights"),
    }
    builder, enum_name = builders[cfg.backbone]
    model = builder(weights=None, **kwargs)
    if cfg.backbone_weights:
        path = Path(cfg.backbone_weights).expanduser()
        if not path.is_file():
            raise BackboneWeightsError(
                f"backbone weights file not found: {path} (expected a torchvision state dict "
                f"of {cfg.backbone}, e.g. the file torchvision stores under $TORCH_HOME/hub/"
                "checkpoints)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - re-raised with the file name
            raise BackboneWeightsError(
                f"cannot load backbone weights {path} into {cfg.backbone}: {err}") from err
    elif cfg.pretrained:
        weights = getattr(tvm, enum_name).IMAGENET1K_V1
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # noqa: BLE001 - no network, bad cache, ...
            home = os.environ.get("TORCH_HOME", "~/.cache/torch")
            raise BackboneWeightsError(
                f"cannot obtain ImageNet weights {enum_name}.IMAGENET1K_V1 for {cfg.backbone} "
                f"({type(err).__name__}: {err}). Without network access, put the file "
                f"{Path(weights.url).name} from {weights.url} into {home}/hub/checkpoints/ "
                "(TORCH_HOME), or pass its path with --backbone-weights "
                "(ModelConfig.backbone_weights), or train from random initialisation "
                "(pretrained: false).") from err
        model.load_state_dict(state)
    return model


def _vgg16(cfg: ModelConfig) -> Backbone:
    if cfg.stride != 32:
        raise ConfigError(f"backbone vgg16 has stride 32, config says {cfg.stride}")
    vgg = _torchvision_model(cfg)
    fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=3)
    fc7 = nn.Conv2d(4096, 4096, kernel_size=1)
    fc8 = nn.Conv2d(4096, cfg.feat_dim, kernel_size=1)
    linear6, linear7, linear8 = vgg.classifier[0], vgg.classifier[3], vgg.classifier[6]
    with torch.no_grad():  # fully connected -> convolutional (same weights)
        fc6.weight.copy_(linear6.weight.view(4096, 512, 7, 7))
        fc6.bias.copy_(linear6.bias)
        fc7.weight.copy_(linear7.weight.view(4096, 4096, 1, 1))
        fc7.bias.copy_(linear7.bias)
        if cfg.feat_dim == linear8.out_features:
            fc8.weight.copy_(linear8.weight.view(cfg.feat_dim, 4096, 1, 1))
            fc8.bias.copy_(linear8.bias)
    head = nn.Sequential(fc6, nn.ReLU(inplace=True), fc7, nn.ReLU(inplace=True), fc8)
    return Backbone(vgg.features, head, 32)


def _dilate_to_stride(features: nn.Module, stride: int) -> None:
    """Turn stride-2 convolutions beyond output ``stride`` into dilated ones, in place.

    torchvision's convention (as its ``dilated=True``): a convolution that loses its stride, and
    every later one with a kernel over 1x1, take the doubled dilation rate.
    """
    current, rate = 1, 1
    for module in features.modules():
        if not isinstance(module, nn.Conv2d) or module.kernel_size[0] == 1:
            continue
        if module.stride[0] == 2:
            if current >= stride:
                module.stride, rate = (1, 1), rate * 2
            else:
                current *= 2
        if rate > 1:
            module.dilation = (rate, rate)
            module.padding = (rate * (module.kernel_size[0] - 1) // 2,) * 2


def _mobilenet_v3(cfg: ModelConfig) -> Backbone:
    if cfg.stride not in (8, 16, 32):
        raise ConfigError(f"backbone {cfg.backbone} supports stride 8 (last two stages "
                          f"dilated), 16 (last stage dilated) or 32, config says {cfg.stride}")
    model = _torchvision_model(cfg, dilated=cfg.stride == 16)
    if cfg.stride == 8:
        _dilate_to_stride(model.features, 8)
    channels = model.features[-1].out_channels
    return Backbone(model.features, nn.Conv2d(channels, cfg.feat_dim, kernel_size=1), cfg.stride)


def _resnet18(cfg: ModelConfig) -> Backbone:
    if cfg.stride not in (16, 32):
        raise ConfigError(f"backbone resnet18 supports stride 16 (layer4 dilated) or 32, "
                          f"config says {cfg.stride}")
    model = _torchvision_model(cfg)
    if cfg.stride == 16:  # layer4 without its stride, its 3x3 convolutions dilated instead
        first = model.layer4[0]
        first.conv1.stride = (1, 1)
        first.downsample[0].stride = (1, 1)
        for block in model.layer4:
            for conv in (block.conv1, block.conv2):
                if conv is not first.conv1:
                    conv.dilation, conv.padding = (2, 2), (2, 2)
    body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                         model.layer1, model.layer2, model.layer3, model.layer4)
    return Backbone(body, nn.Conv2d(512, cfg.feat_dim, kernel_size=1), cfg.stride)


def _tiny(cfg: ModelConfig) -> Backbone:
    """Return a few stride-2 conv-BN-ReLU blocks: a fast stand-in for tests and smoke runs."""
    if cfg.stride & (cfg.stride - 1):
        raise ConfigError(f"backbone tiny needs a power-of-two stride, config says {cfg.stride}")
    if cfg.pretrained or cfg.backbone_weights:
        raise ConfigError("backbone tiny has no ImageNet weights; set pretrained: false")
    layers: list[nn.Module] = []
    channels, width, remaining = 3, cfg.width, cfg.stride
    while remaining > 1:
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        channels, width, remaining = width, min(width * 2, 4 * cfg.width), remaining // 2
    layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False),
               nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
    return Backbone(nn.Sequential(*layers), nn.Conv2d(channels, cfg.feat_dim, 1), cfg.stride)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation,
                      bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _convnet(cfg: ModelConfig) -> Backbone:
    """Return a plain VGG-style network for CPU training from scratch (the tabletop default).

    One stage per factor of 2 of the stride (a stride-2 3x3 convolution, then a 3x3 one; widths
    ``width``, 2x, 4x, 4x ...), then a context block of 3x3 convolutions dilated 2 and 4 at the
    output stride (receptive field about 100 pixels at stride 8, for relations such as "next to
    the box"). Dense 3x3 convolutions, unlike depthwise ones, train fast on CPU (oneDNN).
    """
    if cfg.stride & (cfg.stride - 1) or cfg.stride < 4:
        raise ConfigError(f"backbone convnet needs a power-of-two stride >= 4, config says "
                          f"{cfg.stride}")
    if cfg.pretrained or cfg.backbone_weights:
        raise ConfigError("backbone convnet has no ImageNet weights; set pretrained: false")
    layers: list[nn.Module] = []
    taps: dict[int, tuple[int, int]] = {}
    channels, width, remaining, stride = 3, cfg.width, cfg.stride, 1
    while remaining > 1:
        layers += _conv_bn_relu(channels, width, stride=2)
        if channels != 3:  # the first stage is one convolution (full resolution is costly)
            layers += _conv_bn_relu(width, width)
        stride *= 2
        taps[len(layers) - 1] = (stride, width)
        channels, width, remaining = width, min(width * 2, 4 * cfg.width), remaining // 2
    for dilation in (2, 4):
        layers += _conv_bn_relu(channels, channels, dilation=dilation)
    return Backbone(nn.Sequential(*layers), nn.Conv2d(channels, cfg.feat_dim, 1), cfg.stride,
                    taps)


BACKBONE_BUILDERS = {
    "vgg16": _vgg16,
    "mobilenet_v3_large": _mobilenet_v3,
    "mobilenet_v3_small": _mobilenet_v3,
    "resnet18": _resnet18,
    "convnet": _convnet,
    "tiny": _tiny,
}


def build_backbone(cfg: ModelConfig) -> Backbone:
    """Return the backbone named by ``cfg.backbone``; an unknown name raises ``ConfigError``."""
    try:
        builder = BACKBONE_BUILDERS[cfg.backbone]
    except KeyError:
        raise ConfigError(f"unknown backbone {cfg.backbone!r}; known backbones: "
                          f"{sorted(BACKBONE_BUILDERS)}") from None
    return builder(cfg)
