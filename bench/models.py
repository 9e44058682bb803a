"""The networks the benchmark measures: the ``paper`` preset and the shipped default model.

The shipped default is ``refseg_model.default_checkpoint_path()`` when that file exists; else
the ``tabletop`` preset at random initialisation (the speed of a network does not depend on
its weights; the agreement of the fast path is then measured on random weights, and the
report says so).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

import refseg_model
from refseg_model.checkpoint import make_payload, save_inference_checkpoint
from refseg_model.config import load_config
from refseg_model.inference import Segmenter
from refseg_model.network import build_model
from refseg_model.text import Vocabulary

# Words of the synthetic tabletop world's expressions and a few more: a realistic vocabulary
# for random-init networks.
WORDS = ("<pad> <go> <eos> <unk> the a red green blue yellow white black cup mug bottle ball "
         "book box jar can bowl plate left right front back middle on of in near next to big "
         "small tall short two table pick up").split()


@dataclass
class Network:
    """A network to measure: its name, config, vocabulary, weights source and model."""

    name: str
    preset: str
    model: torch.nn.Module
    vocabulary: Vocabulary
    config: refseg_model.ModelConfig
    stage: str
    weights: str  # "checkpoint <path>" or "random init"


def load_network(name: str, seed: int = 0) -> Network:
    """Return ``paper`` (random init, VGG-16 at 512) or ``default`` (shipped or tabletop)."""
    if name == "default":
        path = refseg_model.default_checkpoint_path()
        if path.is_file():
            # The weights as stored (fp32, NCHW): each measurement prepares its own copy.
            seg = Segmenter.from_checkpoint(path, device="cpu", precision="fp32",
                                            channels_last=False, compile="off")
            return Network(name, "tabletop", seg.model, seg.vocabulary, seg.config, seg.stage,
                           f"checkpoint {path.name}")
        preset = "tabletop"
    elif name == "paper":
        preset = "paper"
    else:
        raise ValueError(f"unknown network {name!r}")
    torch.manual_seed(seed)
    cfg = load_config(preset).model
    cfg.pretrained, cfg.backbone_weights = False, None  # nothing is downloaded here
    vocabulary = Vocabulary.from_list(WORDS)
    model = build_model(cfg, vocabulary=vocabulary.to_list()).eval()
    return Network(name, preset, model, vocabulary, model.config, "highres", "random init")


def segmenter_of(net: Network, device: torch.device, precision: str = "fp32",
                 channels_last: bool | None = False, compile: str = "off") -> Segmenter:
    """Return a ``Segmenter`` over a private copy of ``net``'s model.

    ``precision="auto"``, ``channels_last=None``, ``compile="auto"``: the node's default path.
    """
    return Segmenter(copy.deepcopy(net.model), net.vocabulary, net.config, stage=net.stage,
                     device=device, precision=precision, channels_last=channels_last,
                     compile=compile)


def write_checkpoint(net: Network, path: Path) -> Path:
    """Save ``net`` as an inference checkpoint the node can load."""
    if net.weights.startswith("checkpoint"):
        return refseg_model.default_checkpoint_path()
    payload = make_payload(net.model, net.config, net.vocabulary.to_list(), net.stage)
    return save_inference_checkpoint(payload, path)
