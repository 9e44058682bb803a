"""The detection stage (``--stage det``): the released code's box-crop training before low-res.

The released recipe (``exp-referit/exp_train_referit_det.py`` of ``ronghanghu/text_objseg``) first
trains the text encoder and the classifier on box crops: each (box, expression) pair is one
sample, the crop resized to 224x224 goes through VGG-16 up to fc8, its L2-normalised fc8 vector is
concatenated with the expression vector and 8 box-coordinate features, and the classifier scores
it (label 1 for the described region's box, 0 for a box elsewhere). The low-res stage then starts
from these weights (``init_referit_seg_lowres_from_det.py`` copies every variable).

Here the network is the segmentation network itself: :class:`RegionScorer` runs its backbone on
the crop and reads the response at the centre cell (for VGG-16 at 224x224 the 7x7 fc6 window at
the centre covers the whole pool5 map, so the centre cell is exactly the fully connected fc6-fc8 of
the released code), its expression encoder, and its classifier on one 1x1 "cell". The weights the
det stage trains are therefore the very weights low-res continues from.

Boxes (``[xmin, ymin, xmax, ymax]``, 0-indexed, inclusive, as ``referit_bbox.json``): the
ground-truth box of each region comes from ``referit_bbox.json`` when the data root has it, else
from the region's mask. Settings are ``TrainConfig.det`` (a ``DetConfig``). Candidates come from
``det.proposals`` (the released EdgeBoxes top-100 files,
``referit_edgeboxes_top100/<image_id>.txt``, shipped with the dataset download) or, when that
folder is missing, are sampled: ``det.random_boxes`` random boxes per image plus
``det.jitter_boxes`` jittered copies of every annotated box of the image (those of the other
regions play the object-like negatives that EdgeBoxes gives). The released rules then apply:
positives are the ground-truth box and candidates with IoU >= ``det.pos_iou`` (0.7), negatives
candidates with IoU < ``det.neg_iou`` (1e-6), subsampled to ``det.neg_ratio`` (1) per positive.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .config import ConfigError, DetConfig, ModelConfig
from .data.base import DataError, SampleSource, first_loadable, read_json
from .preprocess import normalize

log = logging.getLogger("refseg_model.detection")


# -- boxes -----------------------------------------------------------------------------------
def box_iou(boxes: np.ndarray, target) -> np.ndarray:
    """Return the IoU of each inclusive-pixel box in ``boxes`` (N x 4) with ``target`` (4,)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    t = np.asarray(target, dtype=np.float64).reshape(4)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    t_area = (t[2] - t[0] + 1) * (t[3] - t[1] + 1)
    iw = np.clip(np.minimum(boxes[:, 2], t[2]) - np.maximum(boxes[:, 0], t[0]) + 1, 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], t[3]) - np.maximum(boxes[:, 1], t[1]) + 1, 0, None)
    inter = iw * ih
    return inter / (area + t_area - inter)


def box_features(boxes: np.ndarray, width: int, height: int, variant: str = "xy8") -> np.ndarray:
    """Return the released code's box features (``spatial_feature_from_bbox``), N x C float32.

    ``xy8``: xmin, ymin, xmax, ymax scaled to [-1, 1] (pixel index * 2 / size - 1), the centre,
    and the width and height in that scale; ``xy2``: the centre only; ``none``: no columns.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = boxes[:, 0] * 2.0 / width - 1
    y1 = boxes[:, 1] * 2.0 / height - 1
    x2 = boxes[:, 2] * 2.0 / width - 1
    y2 = boxes[:, 3] * 2.0 / height - 1
    feats = np.stack([x1, y1, x2, y2, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)
    if variant == "xy8":
        return feats.astype(np.float32)
    if variant == "xy2":
        return feats[:, 4:6].astype(np.float32)
    if variant == "none":
        return np.zeros((len(boxes), 0), dtype=np.float32)
    raise ConfigError(f"unknown spatial variant {variant!r}")


def mask_bbox_xyxy(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Return the box ``(xmin, ymin, xmax, ymax)``, ends inclusive, of a bool mask (or ``None``).

    The convention of ``referit_bbox.json`` and of every box in this module.
    """
    ys, xs = np.nonzero(np.asarray(mask))
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip inclusive boxes to the image and drop those with xmax < xmin or ymax < ymin."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width - 1)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height - 1)
    keep = (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])
    return boxes[keep]


def read_proposals(path: Path) -> np.ndarray:
    """Read a proposal file (one ``xmin ymin xmax ymax`` row per box) as K x 4 int64."""
    try:
        rows = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read proposal file {path}: {exc}") from exc
    if rows.size and rows.shape[1] != 4:
        raise DataError(f"proposal file {path}: expected 4 numbers a row, got {rows.shape[1]}")
    return rows.reshape(-1, 4).astype(np.int64)


def sampled_boxes(width: int, height: int, gt_boxes: np.ndarray, rng: np.random.Generator,
                  num_random: int, num_jitter: int) -> np.ndarray:
    """Return candidate boxes when no proposals are available (see the module docstring).

    Random boxes have sides uniform in [10 %, 100 %] of the image's; jittered copies shift each
    annotated box by N(0, 0.15 x its size) and scale its sides by exp(N(0, 0.2)).
    """
    out = []
    if num_random:
        w = rng.uniform(0.1, 1.0, num_random) * width
        h = rng.uniform(0.1, 1.0, num_random) * height
        x0 = rng.uniform(0, 1, num_random) * (width - w)
        y0 = rng.uniform(0, 1, num_random) * (height - h)
        out.append(np.stack([x0, y0, x0 + w - 1, y0 + h - 1], axis=1))
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if num_jitter and len(gt):
        box = np.repeat(gt, num_jitter, axis=0)
        bw, bh = box[:, 2] - box[:, 0] + 1, box[:, 3] - box[:, 1] + 1
        cx = (box[:, 0] + box[:, 2]) / 2 + rng.normal(0, 0.15, len(box)) * bw
        cy = (box[:, 1] + box[:, 3]) / 2 + rng.normal(0, 0.15, len(box)) * bh
        bw = bw * np.exp(rng.normal(0, 0.2, len(box)))
        bh = bh * np.exp(rng.normal(0, 0.2, len(box)))
        out.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2 - 1, cy + bh / 2 - 1], axis=1))
    if not out:
        return np.zeros((0, 4), dtype=np.int64)
    return clip_boxes(np.rint(np.concatenate(out)), width, height)


# -- samples ---------------------------------------------------------------------------------
def _region_key(sample) -> str:
    return f"{sample.image_id}_{sample.region_id}"


def _image_size(source: SampleSource, sample, sizes: dict | None) -> tuple[int, int]:
    """Return (width, height) of the sample's image: ``referit_imsize.json``, else the file."""
    if sizes is not None and f"{sample.image_id}.jpg" in sizes:
        width, height = sizes[f"{sample.image_id}.jpg"]
        return int(width), int(height)
    image = source.load_image(sample)
    return image.shape[1], image.shape[0]


def build_box_samples(source: SampleSource, det: DetConfig, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Return the detection samples of ``source``: (sample index, box, label) arrays and a note.

    Row k is one (box, expression) pair: ``source.samples[index[k]]``'s expression with
    ``boxes[k]`` (inclusive pixels) and ``labels[k]`` (1 positive, 0 negative). The note says
    where the ground-truth boxes and the candidates came from.
    """
    root = Path(source.root)
    bbox_file = root / "referit_bbox.json"
    gt_json = read_json(bbox_file, "box") if bbox_file.is_file() else None
    size_file = root / "referit_imsize.json"
    sizes = read_json(size_file, "image size") if size_file.is_file() else None
    proposal_dir = root / det.proposals if det.proposals else None
    use_proposals = proposal_dir is not None and proposal_dir.is_dir()

    by_image: dict[str, list[int]] = {}
    for index, sample in enumerate(source.samples):
        by_image.setdefault(sample.image_id, []).append(index)
    rng = np.random.default_rng(seed)
    pos_parts, neg_parts = [], []
    from_masks = 0
    for image_id, indices in by_image.items():
        first = source.samples[indices[0]]
        gt: dict[str, tuple[int, int, int, int]] = {}
        for index in indices:
            sample = source.samples[index]
            key = _region_key(sample)
            if key in gt:
                continue
            box = None
            if gt_json is not None and key in gt_json:
                box = tuple(int(v) for v in gt_json[key])
            else:
                try:
                    box = mask_bbox_xyxy(source.load_mask(sample))
                    from_masks += 1
                except DataError as exc:
                    source.problem("unloadable masks", str(exc))
            if box is not None:
                gt[key] = box
        if not gt:
            continue
        try:
            width, height = _image_size(source, first, sizes)
        except DataError as exc:
            source.problem("unloadable images", str(exc), len(indices))
            continue
        if use_proposals:
            path = proposal_dir / f"{image_id}.txt"
            if not path.is_file():
                source.problem("missing proposals", f"proposal file not found: {path}",
                               len(indices))
                continue
            candidates = clip_boxes(read_proposals(path), width, height)
        else:
            candidates = sampled_boxes(width, height, np.array(list(gt.values())), rng,
                                       det.random_boxes, det.jitter_boxes)
        ious = {key: box_iou(candidates, box) for key, box in gt.items()}
        for index in indices:
            key = _region_key(source.samples[index])
            if key not in gt:
                continue
            iou = ious[key]
            pos = np.concatenate([np.array([gt[key]]), candidates[iou >= det.pos_iou]])
            neg = candidates[iou < det.neg_iou]
            pos_parts.append(np.column_stack([np.full(len(pos), index), pos]).astype(np.int32))
            neg_parts.append(np.column_stack([np.full(len(neg), index), neg]).astype(np.int32))
    if not pos_parts:
        raise DataError(f"no detection sample in {source.name} {source.split} under {root}")
    positives = np.concatenate(pos_parts)
    negatives = np.concatenate(neg_parts).reshape(-1, 5)  # int32: ReferIt has millions
    keep = min(len(negatives), int(det.neg_ratio * len(positives)))
    negatives = negatives[rng.choice(len(negatives), keep, replace=False)]
    rows = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    order = rng.permutation(len(rows))
    rows, labels = rows[order], labels[order].astype(np.float32)
    what = (f"candidates from {proposal_dir}" if use_proposals else
            f"sampled candidates ({det.random_boxes} random + {det.jitter_boxes} "
            f"jittered per annotated box; no folder {proposal_dir})")
    boxes_from = "referit_bbox.json" if gt_json is not None else "the masks"
    if gt_json is not None and from_masks:
        boxes_from += f" ({from_masks} from masks)"
    note = (f"{len(positives)} positive and {len(negatives)} negative boxes, ground truth from "
            f"{boxes_from}, {what}")
    source.summarize_problems()
    return rows[:, 0], rows[:, 1:], labels, note


class BoxDataset(Dataset):
    """Torch dataset of the detection stage: one (box crop, expression, label) per item.

    Item: ``image`` 3 x C x C float32 (the box's pixels resized to ``det.crop_size``, mean
    subtracted), ``tokens``, ``spatial`` (the box features of ``cfg.spatial``), ``mask`` (1 x 1
    label: 1.0 the described region's box, 0.0 elsewhere) and ``index``.
    """

    def __init__(self, source: SampleSource, vocab, cfg: ModelConfig, det: DetConfig,
                 seed: int = 0):
        """Build the box samples of ``source`` (see :func:`build_box_samples`)."""
        self.source = source
        self.vocab = vocab
        self.cfg = cfg
        self.crop_size = det.crop_size
        self.sample_index, self.boxes, self.labels, self.note = build_box_samples(
            source, det, seed)
        log.info("det stage: %s", self.note)

    def __len__(self) -> int:
        """Return the number of (box, expression) pairs."""
        return len(self.labels)

    def _item(self, k: int) -> dict:
        sample = self.source.samples[int(self.sample_index[k])]
        image = self.source.load_image(sample)
        height, width = image.shape[:2]
        xmin, ymin, xmax, ymax = (int(v) for v in self.boxes[k])
        if xmax >= width or ymax >= height:
            raise DataError(f"box {self.boxes[k].tolist()} is outside image {sample.image_path} "
                            f"({width}x{height})")
        crop = np.ascontiguousarray(image[ymin:ymax + 1, xmin:xmax + 1])
        crop = cv2.resize(crop, (self.crop_size, self.crop_size), interpolation=cv2.INTER_LINEAR)
        spatial = box_features(self.boxes[k], width, height, self.cfg.spatial)[0]
        return {
            "image": torch.from_numpy(normalize(crop)),
            "tokens": torch.tensor(self.vocab.encode(sample.expression, self.cfg.max_len),
                                   dtype=torch.long),
            "spatial": torch.from_numpy(spatial),
            "mask": torch.full((1, 1), float(self.labels[k])),
            "index": k,
        }

    def __getitem__(self, k: int) -> dict:
        """Return item ``k`` (or, when skipping bad data, the next loadable one)."""
        return first_loadable(len(self), k, self._item, self.source)


# -- network ---------------------------------------------------------------------------------
class RegionScorer(nn.Module):
    """Scores (box crop, expression) pairs with the parts of a ``TextObjSegModel``.

    ``forward`` returns B x 1 x 1 x 1 logits; the backbone runs without gradients when none of its
    parameters is trained (the released det stage fixes all of VGG-16).
    """

    def __init__(self, model: nn.Module) -> None:
        """Wrap ``model``; its parameters are shared, not copied."""
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, *, stage: str = "det",
                spatial: torch.Tensor | None = None) -> torch.Tensor:
        """Return the logits of B crops (B x 3 x C x C) with B expressions and box features."""
        net = self.model
        cfg = net.config
        if spatial is None or spatial.shape != (images.shape[0], cfg.spatial_channels):
            got = None if spatial is None else tuple(spatial.shape)
            raise ValueError(f"spatial must be B x {cfg.spatial_channels} box features, got {got}")
        trains_backbone = any(p.requires_grad for p in net.backbone.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trains_backbone):
            fmap = net.backbone(images)
        height, width = fmap.shape[-2:]
        visual = F.normalize(fmap[:, :, height // 2, width // 2].float(), dim=1)
        text = net.expression_encoder(tokens)
        parts = [visual, spatial.to(visual), text]
        if cfg.fusion == "concat_product":
            parts.append(visual * text * visual.shape[1])
        return net.classifier(torch.cat(parts, dim=1)[:, :, None, None])


def released_det_init(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Initialise the trained parts as ``exp_train_referit_det.py`` does (in place).

    Classifier: ``mlp_l1`` weights N(0, 0.05), ``mlp_l2`` N(0, 0.1), biases 0 (lines 26-27,
    155-162). Embedding and LSTM: TensorFlow's default ``glorot_uniform`` (the embedding
    ``[vocab, embed]``; the LSTM as one ``[embed + hidden, 4 hidden]`` matrix), biases 0, then the
    configured forget-gate bias.
    """
    encoder = model.expression_encoder
    classifier = model.classifier
    lstm = encoder.lstm
    hidden, embed = lstm.hidden_size, lstm.input_size
    vocab = encoder.embedding.num_embeddings
    with torch.no_grad():
        classifier.mlp1.weight.normal_(0.0, 0.05, generator=generator)
        classifier.mlp2.weight.normal_(0.0, 0.1, generator=generator)
        classifier.mlp1.bias.zero_()
        classifier.mlp2.bias.zero_()
        limit = math.sqrt(6.0 / (vocab + embed))
        encoder.embedding.weight.uniform_(-limit, limit, generator=generator)
        if encoder.embedding.padding_idx is not None:
            encoder.embedding.weight[encoder.embedding.padding_idx].zero_()
        limit = math.sqrt(6.0 / (embed + hidden + 4 * hidden))
        lstm.weight_ih_l0.uniform_(-limit, limit, generator=generator)
        lstm.weight_hh_l0.uniform_(-limit, limit, generator=generator)
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
    if encoder.forget_bias:
        encoder.set_forget_bias(encoder.forget_bias)
