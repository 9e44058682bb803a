"""Segmentation metrics of the paper (Table 1): precision at IoU thresholds, overall and mean IoU.

As in the released evaluation script (``exp-referit/exp_test_referit_seg.py``): for each sample,
I and U are the pixel counts of intersection and union of the predicted and ground-truth masks at
the original image size; **overall IoU** is sum(I) / sum(U) over the split; **prec@t** is the
fraction of samples with ``I / U >= t`` for t in 0.5 ... 0.9; **mean IoU** is the mean of the
per-sample I / U. A sample whose prediction and ground truth are both empty (U = 0) counts as
IoU 1 here (the released script would divide by zero).
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
KEYS = tuple(f"prec@{t}" for t in THRESHOLDS) + ("overall_iou", "mean_iou", "num_samples")


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """Return the pixel counts (intersection, union) of two same-sized binary masks."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


def sample_iou(intersection: int, union: int) -> float:
    """Return I / U, 1.0 for an empty union.

    Both masks empty means nothing was there and nothing was predicted: a correct answer. This
    is the one rule for an empty union in refseg (metrics, benchmarks, the demo).
    """
    return intersection / union if union else 1.0


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Return the IoU of two same-sized binary masks (1.0 when both are empty)."""
    return sample_iou(*intersection_union(pred, gt))


class SegmentationMetrics:
    """Accumulates per-sample I and U over a split and reports the paper's metrics."""

    def __init__(self, thresholds: tuple[float, ...] = THRESHOLDS):
        """Start empty."""
        self.thresholds = tuple(thresholds)
        self.intersections: list[int] = []
        self.unions: list[int] = []
        self.found: list[bool] = []

    def add(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """Score one sample's predicted mask against its ground truth; return its IoU."""
        i, u = intersection_union(pred, gt)
        return self.add_counts(i, u)

    def add_counts(self, intersection: int, union: int, found: bool | None = None) -> float:
        """Add one sample given its I and U counts; return its IoU.

        ``found`` (whether the prediction has any pixel) is recorded when given: ``to_dict`` then
        reports ``found_share``, the share of samples answered "found" (for expressions with no
        target, the share of wrong answers).
        """
        if intersection < 0 or union < intersection:
            raise ValueError(f"need 0 <= I <= U, got I={intersection}, U={union}")
        self.intersections.append(int(intersection))
        self.unions.append(int(union))
        if found is not None:
            self.found.append(bool(found))
        return sample_iou(intersection, union)

    def __len__(self) -> int:
        """Return the number of samples scored."""
        return len(self.unions)

    @property
    def ious(self) -> np.ndarray:
        """Per-sample IoUs, in the order they were added."""
        return np.array([sample_iou(i, u) for i, u in zip(self.intersections, self.unions)],
                        dtype=np.float64)

    def overall_iou(self) -> float:
        """Return sum(I) / sum(U) (1.0 when every union is empty, 0.0 with no samples)."""
        if not self.unions:
            return 0.0
        total_u = sum(self.unions)
        return sum(self.intersections) / total_u if total_u else 1.0

    def mean_iou(self) -> float:
        """Return the mean per-sample IoU (0.0 with no samples)."""
        return float(self.ious.mean()) if self.unions else 0.0

    def precision(self, threshold: float) -> float:
        """Return the fraction of samples with IoU >= ``threshold``."""
        if not self.unions:
            return 0.0
        return float((self.ious >= threshold).mean())

    def to_dict(self) -> dict:
        """Return the metrics with the JSON keys of the public contract (fractions in 0..1)."""
        out: dict = {f"prec@{t}": self.precision(t) for t in self.thresholds}
        out["overall_iou"] = self.overall_iou()
        out["mean_iou"] = self.mean_iou()
        out["num_samples"] = len(self)
        if self.found:
            out["found_share"] = float(np.mean(self.found))
        return out

    def table_row(self, name: str) -> str:
        """Return one row of the paper's Table 1: percentages for prec@0.5..0.9 and overall IoU."""
        return format_table_row(name, self.to_dict())


def table_header(thresholds: tuple[float, ...] = THRESHOLDS) -> str:
    """Return the header line matching :func:`format_table_row`."""
    cols = [f"prec@{t}" for t in thresholds] + ["overall IoU", "mean IoU", "samples"]
    return f"{'Method':<32}" + "".join(f"{c:>13}" for c in cols)


def format_table_row(name: str, metrics: dict) -> str:
    """Format a metrics dict (as :meth:`SegmentationMetrics.to_dict`) as a Table 1 row, in %."""
    precs = [k for k in metrics if k.startswith("prec@")]
    values = [metrics[k] for k in precs] + [metrics["overall_iou"], metrics["mean_iou"]]
    return (f"{name:<32}" + "".join(f"{100 * v:>12.2f}%" for v in values)
            + f"{metrics['num_samples']:>13d}")
