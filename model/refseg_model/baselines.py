"""The paper's baselines, scored by the same evaluation code as the model (Table 1).

- **Whole image**: the predicted mask is the whole image, whatever the expression.
- **Per-word segmentation**: a fully convolutional network with one output channel per frequent
  training word (the top ``num_words`` words, stop words and punctuation excluded), trained with a
  multi-label per-pixel logistic loss: in an image, a word's channel is foreground on the masks of
  the regions whose expressions contain the word. An expression is segmented by combining the maps
  of its known words: **average** (mean probability >= threshold), **intersection** (every word's
  mask: min probability >= threshold) or **union** (any word's mask: max probability >=
  threshold). An expression with no known word gets an empty mask.

Train with ``refseg-baselines train --dataset ... --data-root DIR --out RUN_DIR`` (the command
line is ``refseg_model.cli.baselines``); score with ``refseg-eval --baseline per-word-average
--checkpoint RUN_DIR/perword.pt ...``. The device resolver, checkpoint reader and the skipping of
bad samples are the package's own (``inference.resolve_device``, ``checkpoint.read_payload`` /
``check_header``, ``data.base.first_loadable``).
Per-word checkpoints hold plain tensors and JSON-able values only (``torch.load(...,
weights_only=True)`` reads them) and are written atomically.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from refseg_model.backbones import build_backbone
from refseg_model.checkpoint import CheckpointError, check_header, read_payload, save_checkpoint
from refseg_model.config import ModelConfig
from refseg_model.data.base import DataError, SampleSource, first_loadable
from refseg_model.fileio import atomic_write
from refseg_model.inference import resolve_device
from refseg_model.preprocess import RGB_MEAN, letterbox, letterbox_mask, normalize, unletterbox
from refseg_model.text import tokenize

log = logging.getLogger("refseg_model.baselines")

PERWORD_FORMAT = "refseg-perword-checkpoint"
PERWORD_VERSION = 1
COMBINE_RULES = ("average", "intersection", "union")
BASELINES = ("whole-image", "per-word-average", "per-word-intersection", "per-word-union")
STOP_WORDS = frozenset("""
    a an the this that these those it its of on in at to from with by for and or but as is are
    was were be been am i you he she they we me him her them my your his their our there here
    which who whom what where when how very so than then too just also not no any some all one
    thing things stuff part piece pic picture image photo
""".split())


# -- whole image ------------------------------------------------------------------------------
def whole_image(rgb: np.ndarray, expression: str = "") -> np.ndarray:
    """Whole-image baseline: every pixel of ``rgb`` is the target."""
    return np.ones(rgb.shape[:2], dtype=bool)


# -- per-word: vocabulary and labels -----------------------------------------------------------
def frequent_words(expressions: Sequence[str], num_words: int) -> list[str]:
    """Return the ``num_words`` words in most expressions (ties alphabetical), no stop words."""
    counts = Counter(w for e in expressions for w in set(tokenize(e))
                     if w not in STOP_WORDS and any(c.isalnum() for c in w))
    return sorted(counts, key=lambda w: (-counts[w], w))[:num_words]


class PerWordDataset(Dataset):
    """One item per image: the letterboxed image and one label map per frequent word.

    Item: ``image`` 3xSxS float32, ``labels`` KxSxS float32 (channel k is the union of the masks
    of the image's regions whose expressions contain word k), ``valid`` SxS float32.
    """

    def __init__(self, source: SampleSource, words: Sequence[str], input_size: int):
        """Group the samples of ``source`` by image."""
        self.source = source
        self.words = list(words)
        self.index = {w: k for k, w in enumerate(self.words)}
        self.input_size = input_size
        regions: dict[str, dict[str, list]] = defaultdict(dict)
        for sample in source.samples:
            entry = regions[sample.image_id].setdefault(sample.region_id, [sample, set()])
            entry[1].update(w for w in tokenize(sample.expression) if w in self.index)
        self.images = [(image_id, list(r.values())) for image_id, r in regions.items()
                       if any(words for _, words in r.values())]
        if not self.images:
            raise DataError(f"no image of {source.name} {source.split} under {source.root} has "
                            "an expression with a frequent word")

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        """Return image ``i`` with its per-word labels; when skipping, the next loadable one."""
        return first_loadable(len(self.images), i, self._item, self.source,
                              on_skip=lambda _, exc: self.source.problem("unloadable images",
                                                                         str(exc)))

    def _item(self, i: int) -> dict:
        _, regions = self.images[i]
        image = self.source.load_image(regions[0][0])
        boxed, meta = letterbox(image, self.input_size)
        labels = np.zeros((len(self.words), self.input_size, self.input_size), dtype=np.float32)
        for sample, words in regions:
            if not words:
                continue
            mask = self.source.load_mask(sample)
            if mask.shape != image.shape[:2]:
                raise DataError(f"mask of {sample.sample_id} does not match image "
                                f"{sample.image_path}: {mask.shape} vs {image.shape[:2]}")
            boxed_mask = letterbox_mask(mask, self.input_size)
            for w in words:
                labels[self.index[w]][boxed_mask] = 1.0
        return {"image": torch.from_numpy(normalize(boxed)), "labels": torch.from_numpy(labels),
                "valid": torch.from_numpy(meta.valid().astype(np.float32))}


# -- per-word: network -----------------------------------------------------------------------
class PerWordFCN(nn.Module):
    """Backbone (as the main network's) + 1x1 convolution to one channel per word + upsampling."""

    def __init__(self, cfg: ModelConfig, num_words: int):
        """Build the backbone named by ``cfg`` and a ``num_words``-channel classifier."""
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        self.classifier = nn.Conv2d(cfg.feat_dim, num_words, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return per-word logits B x K x H x W at the input resolution (bilinear upsampling)."""
        coarse = self.classifier(self.backbone(images))
        return F.interpolate(coarse, size=images.shape[-2:], mode="bilinear", align_corners=False)


def multilabel_logistic_loss(logits: torch.Tensor, labels: torch.Tensor,
                             valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel logistic loss averaged over words and (valid) pixels."""
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    if valid is None:
        return loss.mean()
    weight = valid.unsqueeze(1).expand_as(loss)
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


def train_per_word(source: SampleSource, cfg: ModelConfig, out: str | os.PathLike,
                   max_iters: int, *, num_words: int = 100, batch_size: int = 8,
                   lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0005,
                   device: str = "auto", seed: int = 0, progress: bool = True) -> dict:
    """Train the per-word FCN on ``source`` and write ``out/perword.pt``.

    Returns ``{"checkpoint": path, "words": [...], "losses": [loss per iteration]}``; the losses
    are also written to ``out/perword_losses.json``.
    """
    if max_iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    torch.manual_seed(seed)
    dev = resolve_device(device)
    words = frequent_words(source.expressions(), num_words)
    if not words:
        raise DataError(f"no frequent word in the expressions of {source.name} {source.split}")
    dataset = PerWordDataset(source, words, cfg.input_width)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                        drop_last=True, generator=generator)
    model = PerWordFCN(cfg, len(words)).to(dev).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    losses: list[float] = []
    bar = None
    if progress:
        bar = tqdm(total=max_iters, desc="per-word baseline", unit="iter", dynamic_ncols=True)
    try:
        while len(losses) < max_iters:
            for batch in loader:
                logits = model(batch["image"].to(dev))
                loss = multilabel_logistic_loss(logits, batch["labels"].to(dev),
                                                batch["valid"].to(dev))
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"per-word loss is {loss.item()} at iteration "
                                             f"{len(losses) + 1}; lower --lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
                if len(losses) >= max_iters:
                    break
    finally:
        if bar is not None:
            bar.close()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": PERWORD_FORMAT, "version": PERWORD_VERSION,
        "model_config": cfg.to_dict(), "words": words,
        "preprocessing": {"input_size": cfg.input_width, "letterbox": True,
                          "rgb_mean": list(RGB_MEAN)},
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "train": {"iters": len(losses), "lr": lr, "batch_size": loader.batch_size,
                  "dataset": source.name, "split": source.split, "final_loss": losses[-1]},
    }
    path = save_checkpoint(payload, out / "perword.pt")
    atomic_write(out / "perword_losses.json", json.dumps(losses) + "\n")
    return {"checkpoint": path, "words": words, "losses": losses}


# -- per-word: prediction --------------------------------------------------------------------
def combine_word_maps(maps: np.ndarray, rule: str) -> np.ndarray:
    """Combine per-word probability maps (K x H x W) into one map by ``rule``.

    ``average``: the mean; ``intersection``: the minimum (thresholding it gives the pixels in
    every word's mask); ``union``: the maximum (the pixels in any word's mask).
    """
    if rule not in COMBINE_RULES:
        raise ValueError(f"unknown combination {rule!r}; choose one of {COMBINE_RULES}")
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"expected K x H x W maps with K >= 1, got shape {maps.shape}")
    if rule == "average":
        return maps.mean(axis=0)
    return maps.min(axis=0) if rule == "intersection" else maps.max(axis=0)


def load_per_word_checkpoint(path: str | os.PathLike) -> dict:
    """Read a per-word checkpoint safely; raise :class:`CheckpointError` saying what is wrong."""
    path = Path(path)
    payload = read_payload(path)  # missing, truncated, corrupt or pickled: CheckpointError
    check_header(payload, path, PERWORD_FORMAT, PERWORD_VERSION,
                 "a per-word baseline checkpoint", "train one with refseg-baselines train")
    return payload


class PerWordSegmenter:
    """Segments an expression by combining the per-word maps of its known words."""

    def __init__(self, model: PerWordFCN, words: Sequence[str], device: str = "auto",
                 threshold: float = 0.5):
        """Wrap a trained :class:`PerWordFCN` and its word list."""
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.words = list(words)
        self.index = {w: k for k, w in enumerate(self.words)}
        self.input_size = model.cfg.input_width
        self.threshold = threshold
        self._cache: tuple | None = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto",
                        threshold: float = 0.5) -> PerWordSegmenter:
        """Load a checkpoint written by :func:`train_per_word`."""
        payload = load_per_word_checkpoint(path)
        cfg = ModelConfig.from_dict(dict(payload["model_config"]))
        cfg.pretrained, cfg.backbone_weights = False, None
        model = PerWordFCN(cfg, len(payload["words"]))
        try:
            model.load_state_dict(payload["state_dict"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path}: weights do not fit the per-word network: {exc}") from exc
        return cls(model, payload["words"], device, threshold)

    def known_words(self, expression: str) -> list[str]:
        """Return the expression's words that have a channel, in order, without repeats."""
        return list(dict.fromkeys(w for w in tokenize(expression) if w in self.index))

    def word_maps(self, rgb: np.ndarray):
        """Return (K x S x S per-word probabilities on the letterboxed image, Letterbox)."""
        key = (rgb.shape, hash(rgb.tobytes()))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        boxed, meta = letterbox(rgb, self.input_size)
        batch = torch.from_numpy(normalize(boxed)).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            probs = torch.sigmoid(self.model(batch)[0]).float().cpu().numpy()
        self._cache = (key, probs, meta)
        return probs, meta

    def predict(self, rgb: np.ndarray, expression: str, rule: str = "average") -> np.ndarray:
        """Return the HxW bool mask of ``expression`` in ``rgb`` by combination ``rule``."""
        words = self.known_words(expression)
        if not words:
            return np.zeros(rgb.shape[:2], dtype=bool)
        probs, meta = self.word_maps(rgb)
        combined = combine_word_maps(probs[[self.index[w] for w in words]], rule)
        return unletterbox(combined, meta) >= self.threshold

    def predictor(self, rule: str) -> Callable[[np.ndarray, str], np.ndarray]:
        """Return ``predict_fn(rgb, expression)`` for :func:`refseg_model.evaluate.evaluate`."""
        if rule not in COMBINE_RULES:
            raise ValueError(f"unknown combination {rule!r}; choose one of {COMBINE_RULES}")
        return lambda rgb, expression: self.predict(rgb, expression, rule)


def baseline_predictor(name: str, checkpoint: str | os.PathLike | None = None,
                       device: str = "auto", threshold: float = 0.5):
    """Return the predictor of baseline ``name`` (one of :data:`BASELINES`)."""
    if name == "whole-image":
        return whole_image
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
    if checkpoint is None:
        raise ValueError(f"baseline {name} needs --checkpoint (a per-word checkpoint written by "
                         "refseg-baselines train)")
    segmenter = PerWordSegmenter.from_checkpoint(checkpoint, device, threshold)
    return segmenter.predictor(name.removeprefix("per-word-"))
