"""Evaluation of a predictor over a split: the paper's metrics, optional mask PNGs, JSON.

A *predictor* is any callable ``predict_fn(rgb, expression) -> HxW bool`` returning the predicted
mask at the original image size (``Segmenter.predict(...).mask``, the whole-image baseline, the
per-word baselines). Predictions are scored at the original resolution, as the released code does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from refseg_model.augment import PERTURBATIONS
from refseg_model.augment import perturb as perturb_image
from refseg_model.breakdown import SIZE_EDGES, GroupedMetrics
from refseg_model.data.base import SampleSource
from refseg_model.fileio import atomic_write, write_mask_png
from refseg_model.metrics import SegmentationMetrics, intersection_union

PredictFn = Callable[[np.ndarray, str], np.ndarray]


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def evaluate(predict_fn: PredictFn, source: SampleSource, *,
             save_masks: str | os.PathLike | None = None, progress: bool = True,
             limit: int | None = None, by: Sequence[str] = (),
             size_edges: Sequence[int] = SIZE_EDGES, perturb: str | None = None) -> dict:
    """Run ``predict_fn`` on every sample of ``source`` and return the metrics dict.

    The dict has the keys ``prec@0.5`` ... ``prec@0.9``, ``overall_iou``, ``mean_iou`` and
    ``num_samples`` (fractions in 0..1). Samples that cannot be loaded follow the source's error
    policy (skipped with a warning naming the file, or :class:`DataError`). With ``save_masks``
    each prediction is written as ``<sample_id>.png`` (255 = target, original size). ``limit``
    evaluates only the first ``limit`` samples. ``by`` names groupings of
    :mod:`refseg_model.breakdown` (``kind``, ``strategy``, ``size`` with bands cut at
    ``size_edges`` pixels); each adds a ``by_<grouping>`` section of per-group metrics.
    ``perturb`` names a camera condition of :data:`refseg_model.augment.PERTURBATIONS` applied
    to every image before it is predicted.

    Samples whose ground truth is empty (expressions with no target: the right answer is "not
    found") count in the split-wide metrics as IoU 1 when nothing is predicted, 0 otherwise;
    the ``present`` section holds the metrics of the samples with a target only, and
    ``no_target`` the number of the others and the share answered "found" (``found_share``).
    Every section carries ``found_share``, the share of its samples with a non-empty prediction.
    """
    if perturb is not None and perturb not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {perturb!r}; choose one of "
                         f"{', '.join(PERTURBATIONS)}")
    samples = source.samples[:limit] if limit else source.samples
    grouped = GroupedMetrics(source, by, size_edges) if by else None
    out_dir = Path(save_masks) if save_masks is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    metrics, present, absent = SegmentationMetrics(), SegmentationMetrics(), SegmentationMetrics()
    bar = None
    if progress:
        bar = tqdm(total=len(samples), desc=f"evaluating {source.name} {source.split}",
                   unit="sample", dynamic_ncols=True)
    try:
        for sample in samples:
            loaded = source.load(sample)
            if loaded is not None:
                image, gt = loaded
                if perturb is not None:
                    image = perturb_image(image, perturb)
                pred = np.asarray(predict_fn(image, sample.expression))
                if pred.shape != gt.shape:
                    raise ValueError(
                        f"predictor returned a {pred.shape} mask for {sample.sample_id} whose "
                        f"image {sample.image_path} is {gt.shape[0]}x{gt.shape[1]}")
                pred = pred.astype(bool)
                i, u = intersection_union(pred, gt)
                found, area = bool(pred.any()), int(gt.sum())
                metrics.add_counts(i, u, found)
                (present if area else absent).add_counts(i, u, found)
                if grouped is not None:
                    grouped.add_counts(sample, area, i, u, found)
                if out_dir is not None:
                    write_mask_png(out_dir / f"{sample.sample_id}.png", pred)
            if bar is not None:
                bar.update(1)
                if len(metrics):
                    bar.set_postfix(overall_iou=f"{metrics.overall_iou():.3f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    source.summarize_problems()
    result = metrics.to_dict()
    result["present"] = present.to_dict()
    result["no_target"] = {"num_samples": len(absent),
                           "found_share": absent.to_dict().get("found_share", 0.0)}
    if perturb is not None:
        result["perturb"] = perturb
    if grouped is not None:
        result.update(grouped.to_dict())
    return result

