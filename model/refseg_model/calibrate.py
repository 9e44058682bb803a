"""Choose the probability threshold of a checkpoint on a validation split, and store it.

The network is trained with a logistic loss whose foreground weight (3 : 1 in the tabletop
presets) shifts the probabilities: 0.5 is not the threshold that gives the best masks. For each
validation sample the probability map is computed once (``Segmenter.predict``, original image
size) and the intersection and union with the ground truth are counted at every candidate
threshold. The threshold with the highest prec@0.5 wins (ties: the higher mean IoU, then the one
nearest 0.5). Expressions with no target (the ``absent_*`` kinds of the synthetic world) take
part like the others: an empty mask scores IoU 1 on them and any pixel scores 0, so the threshold
is chosen over present and absent targets at once (a low threshold that finds every small
target but also answers "found" to "the jar" on a table without one loses). ``refseg-calibrate
--write`` stores it in the checkpoint under ``threshold``
(atomically); ``Segmenter.from_checkpoint``, ``refseg-eval`` and the node use it unless a
threshold is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, open_source
from .inference import Segmenter
from .metrics import SegmentationMetrics

GRID = tuple(round(t, 2) for t in np.arange(0.20, 0.801, 0.05))


def threshold_sweep(segmenter, source, *, limit: int | None = None,
                    grid: Sequence[float] = GRID, progress: bool = False) -> dict[float, dict]:
    """Return ``{threshold: metrics dict}`` of ``segmenter`` on ``source`` for each of ``grid``."""
    grid = sorted(float(t) for t in grid)
    if not grid or not all(0.0 < t < 1.0 for t in grid):
        raise ValueError(f"thresholds must lie in (0, 1), got {grid}")
    metrics = {t: SegmentationMetrics() for t in grid}
    samples = source.samples[:limit] if limit else source.samples
    bar = None
    if progress:
        bar = tqdm(total=len(samples), desc="calibrating", unit="sample", dynamic_ncols=True)
    for sample in samples:
        loaded = source.load(sample)
        if bar is not None:
            bar.update(1)
        if loaded is None:
            continue
        image, gt = loaded
        probs = segmenter.predict(image, sample.expression).probs
        for t in grid:
            metrics[t].add(probs >= t, gt)
    if bar is not None:
        bar.close()
    return {t: m.to_dict() for t, m in metrics.items()}


def best_threshold(sweep: dict[float, dict]) -> float:
    """Return the threshold of ``sweep`` with the highest prec@0.5 (then mean IoU, then ~0.5)."""
    if not sweep:
        raise ValueError("empty threshold sweep")
    return max(sweep, key=lambda t: (round(sweep[t]["prec@0.5"], 6),
                                     round(sweep[t]["mean_iou"], 6), -abs(t - 0.5)))


def write_threshold(checkpoint: str | Path, threshold: float, sweep: dict | None = None) -> None:
    """Store ``threshold`` (and the sweep that chose it) in ``checkpoint``, atomically."""
    payload = load_checkpoint(checkpoint)
    payload["threshold"] = float(threshold)
    if sweep is not None:
        payload["threshold_sweep"] = {f"{t:.2f}": {k: float(v) for k, v in m.items()}
                                      for t, m in sweep.items()}
    save_checkpoint(payload, checkpoint)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``refseg-calibrate``."""
    p = argparse.ArgumentParser(
        prog="refseg-calibrate",
        description="Choose a checkpoint's probability threshold on a validation split "
                    "(highest prec@0.5) and, with --write, store it in the checkpoint.")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--dataset", required=True, choices=("referit", "refer", "synthetic"))
    p.add_argument("--data-root", required=True, type=Path)
    p.add_argument("--split", default="val", help="validation split (default: val)")
    p.add_argument("--limit", type=int, default=1000, help="first N samples (0 = all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--write", action="store_true", help="store the threshold in the checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``refseg-calibrate``; return the exit status (2 on bad input, with the reason)."""
    args = build_parser().parse_args(argv)

    try:
        source = open_source(args.dataset, args.data_root, args.split, "skip")
        segmenter = Segmenter.from_checkpoint(args.checkpoint, device=args.device,
                                              threshold=0.5)
        sweep = threshold_sweep(segmenter, source, limit=args.limit or None,
                                progress=not args.no_progress)
    except (CheckpointError, DataError, ValueError) as exc:
        print(f"refseg-calibrate: error: {exc}", file=sys.stderr)
        return 2
    best = best_threshold(sweep)
    print("threshold  prec@0.5  mean_iou  overall_iou")
    for t, m in sweep.items():
        mark = "  <- best" if t == best else ""
        print(f"{t:9.2f}  {100 * m['prec@0.5']:8.2f}  {100 * m['mean_iou']:8.2f}  "
              f"{100 * m['overall_iou']:11.2f}{mark}")
    if args.write:
        write_threshold(args.checkpoint, best, sweep)
        print(f"wrote threshold {best:.2f} into {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
