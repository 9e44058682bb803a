"""The paper's training loss: per-pixel logistic loss, foreground weighted against background.

Optionally (``TrainConfig.dice_weight``, not the paper's) plus a per-sample soft Dice term, which
weighs a 20-pixel cup as much as the whole table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _matched_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if labels.dim() == logits.dim() - 1 and logits.dim() == 4 and logits.shape[1] == 1:
        labels = labels.unsqueeze(1)
    if labels.shape != logits.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         "differ in shape (low-res stage: use coarse labels)")
    return labels.to(logits.dtype)


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1.0
                   ) -> torch.Tensor:
    """Return the batch mean of ``1 - (2 |p y| + s) / (|p| + |y| + s)`` per sample.

    ``p`` is the sigmoid of ``logits``; each sample counts the same whatever its mask's area.
    """
    labels = _matched_labels(logits, labels).flatten(1)
    probs = torch.sigmoid(logits).flatten(1)
    overlap = (probs * labels).sum(dim=1)
    return (1.0 - (2.0 * overlap + smooth) / (probs.sum(dim=1) + labels.sum(dim=1) + smooth)
            ).mean()


def weighted_logistic_loss(logits: torch.Tensor, labels: torch.Tensor, w_fg: float = 3.0,
                           w_bg: float = 1.0) -> torch.Tensor:
    """Return the mean over pixels of ``w * log(1 + exp(-y * logit))``.

    ``labels`` holds 1 for foreground and 0 for background (y = +1 / -1); ``w`` is ``w_fg`` on
    foreground pixels and ``w_bg`` on background pixels. ``logits`` and ``labels`` must have
    the same shape (a B x H x W label is accepted for B x 1 x H x W logits).
    """
    labels = _matched_labels(logits, labels)
    weights = labels * w_fg + (1.0 - labels) * w_bg
    per_pixel = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (weights * per_pixel).mean()
