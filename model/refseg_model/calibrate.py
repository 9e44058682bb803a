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

When the split has expressions with no target, a *found rule* is chosen the same way at that
threshold: the least share of the image a mask must cover and the least peak probability it
must reach to count as "found", and, for a relation, the least peak probability its landmark
must reach on its own (:func:`found_rule_sweep`, stored under ``found_rule``; a weak, speckled
answer to "the jar" on a table without one is then "not found", and so is "the cup next to the
yellow bowl" on a table without a yellow bowl). Among the rules, those that answer "found" on
at most :data:`MAX_FOUND_SHARE` of every no-target kind of the split are preferred (issue 23: a
robot told to pick up a jar that is not there must hear "not found"); when none does, the best
rule over all.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, open_source
from .inference import Segmenter
from .metrics import SegmentationMetrics, intersection_union

GRID = tuple(round(t, 2) for t in np.arange(0.20, 0.801, 0.05))


MIN_AREA_GRID = (0.0, 0.0002, 0.0005, 0.001, 0.002)  # of the image's pixels
MIN_PEAK_GRID = (0.0, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)
MIN_LANDMARK_PEAK_GRID = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97)  # its landmark alone
# Of each no-target kind answered "found", at most (when reachable): issue 23 asks for 5% on
# fresh scenes; a rule chosen at the edge of 5% on ~100 validation commands of a kind lands
# above it on fresh ones about as often as below (the default of 18:14: 4.5% on validation,
# 6.2% and 6.4% on two kinds of a fresh seed), so the cap leaves a margin.
MAX_FOUND_SHARE = 0.03
CAP_GRID = (0.05, 0.04, 0.03, 0.02, 0.01)  # the caps whose best rules refseg-calibrate prints


@dataclass(frozen=True)
class SampleRecord:
    """What the found rule needs of one validation sample at every threshold of the grid.

    ``areas[k]``, ``intersections[k]``, ``unions[k]``: the mask at ``grid[k]``; ``peak``: the
    highest probability; ``pixels``: the image's; ``target``: whether it has a target;
    ``landmark_peak``: the peak probability of a relation's landmark on its own (-1: none);
    ``kind``: the expression's kind when the dataset says it ("" otherwise).
    """

    areas: tuple
    intersections: tuple
    unions: tuple
    peak: float
    pixels: int
    target: bool
    landmark_peak: float = -1.0
    kind: str = ""


def threshold_sweep(segmenter, source, *, limit: int | None = None,
                    grid: Sequence[float] = GRID, progress: bool = False,
                    records: list | None = None) -> dict[float, dict]:
    """Return ``{threshold: metrics dict}`` of ``segmenter`` on ``source`` for each of ``grid``.

    ``records``, when given, receives one :class:`SampleRecord` per sample (for
    :func:`found_rule_sweep`).
    """
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
        prediction = segmenter.predict(image, sample.expression)
        probs = prediction.probs
        masks = [probs >= t for t in grid]
        areas = tuple(int(m.sum()) for m in masks)
        counts = [intersection_union(m, gt) for m in masks]
        for t, (i, u), area in zip(grid, counts, areas):
            metrics[t].add_counts(i, u, area > 0)
        if records is not None:
            kind = source.expression_kind(sample)
            records.append(SampleRecord(
                areas, tuple(c[0] for c in counts), tuple(c[1] for c in counts),
                float(probs.max()), int(probs.size), bool(gt.any()),
                -1.0 if prediction.landmark_peak is None else prediction.landmark_peak,
                "" if kind is None else kind.kind))
    if bar is not None:
        bar.close()
    return {t: m.to_dict() for t, m in metrics.items()}


def best_threshold(sweep: dict[float, dict]) -> float:
    """Return the threshold of ``sweep`` with the highest prec@0.5 (then mean IoU, then ~0.5)."""
    if not sweep:
        raise ValueError("empty threshold sweep")
    return max(sweep, key=lambda t: (round(sweep[t]["prec@0.5"], 6),
                                     round(sweep[t]["mean_iou"], 6), -abs(t - 0.5)))


def found_rule_sweep(records: Sequence[SampleRecord], grid: Sequence[float], threshold: float,
                     min_areas: Sequence[float] = MIN_AREA_GRID,
                     min_peaks: Sequence[float] = MIN_PEAK_GRID,
                     min_landmark_peaks: Sequence[float] = MIN_LANDMARK_PEAK_GRID
                     ) -> dict[tuple, float]:
    """Return ``{(min_area, min_peak, min_landmark_peak): prec@0.5}`` of the found rule.

    The rule answers "not found" (an empty mask) when the mask at ``threshold`` covers less than
    ``min_area`` of the image, no probability reaches ``min_peak``, or the command names a
    landmark whose own peak probability stays under ``min_landmark_peak``. Scored over present
    and absent targets together: "not found" is right (IoU 1) exactly where there is no target.
    """
    k = _grid_index(grid, threshold)
    out = {}
    for rule in itertools.product(min_areas, min_peaks, min_landmark_peaks):
        hits = 0
        for r in records:
            if _answers_found(r, k, rule):
                hits += r.unions[k] > 0 and r.intersections[k] / r.unions[k] >= 0.5
            else:
                hits += not r.target
        out[tuple(float(x) for x in rule)] = hits / max(1, len(records))
    return out


def _grid_index(grid: Sequence[float], threshold: float) -> int:
    return [round(float(t), 6) for t in grid].index(round(float(threshold), 6))


def _answers_found(r: SampleRecord, k: int, rule: tuple) -> bool:
    """Whether the mask at ``grid[k]`` passes ``rule`` ``(min_area, min_peak, min_landmark)``."""
    min_area, min_peak, min_landmark = rule
    return r.areas[k] > 0 and r.areas[k] >= min_area * r.pixels and r.peak >= min_peak and \
        (r.landmark_peak < 0 or r.landmark_peak >= min_landmark)


def worst_found_shares(records: Sequence[SampleRecord], grid: Sequence[float],
                       threshold: float, rules) -> dict[tuple, float]:
    """Return, per rule, the highest share answered "found" over the no-target kinds.

    Records without a target are grouped by ``kind`` (all in one group when the dataset names
    no kinds); 0.0 for every rule when there are none.
    """
    k = _grid_index(grid, threshold)
    groups: dict[str, list[SampleRecord]] = {}
    for r in records:
        if not r.target:
            groups.setdefault(r.kind, []).append(r)
    return {rule: max((sum(_answers_found(r, k, rule) for r in group) / len(group)
                       for group in groups.values()), default=0.0) for rule in rules}


def best_found_rule(sweep: dict[tuple, float], worst: dict[tuple, float] | None = None,
                    max_found_share: float = MAX_FOUND_SHARE) -> tuple[float, ...]:
    """Return the rule of ``sweep`` with the highest prec@0.5 (ties: the mildest rule).

    With ``worst`` (:func:`worst_found_shares`), only rules that answer "found" on at most
    ``max_found_share`` of every no-target kind compete, when there are any.
    """
    if not sweep:
        raise ValueError("empty found-rule sweep")
    within = {} if worst is None else \
        {rule: v for rule, v in sweep.items() if worst[rule] <= max_found_share}
    candidates = within or sweep
    return max(candidates, key=lambda rule: (round(sweep[rule], 6), *(-x for x in rule)))


def write_threshold(checkpoint: str | Path, threshold: float, sweep: dict | None = None,
                    found_rule: tuple[float, ...] | None = None) -> None:
    """Store ``threshold`` (the sweep that chose it, the found rule) in ``checkpoint``, atomically.

    ``found_rule`` ``(min_area, min_peak[, min_landmark_peak])`` goes under ``found_rule`` (see
    :func:`found_rule_sweep`; ``Segmenter`` applies it).
    """
    payload = load_checkpoint(checkpoint)
    payload["threshold"] = float(threshold)
    if found_rule is not None:
        payload["found_rule"] = {name: float(value) for name, value in zip(
            ("min_area", "min_peak", "min_landmark_peak"), found_rule)}
    if sweep is not None:
        payload["threshold_sweep"] = {f"{t:.2f}": {k: float(v) for k, v in m.items()}
                                      for t, m in sweep.items()}
    save_checkpoint(payload, checkpoint)


def _print_trade_off(title: str, name: str, part: int, grid: Sequence[float], rule: tuple,
                     rules: dict[tuple, float], worst: dict[tuple, float]) -> None:
    """Print prec@0.5 and the worst no-target kind for each value of one part of ``rule``."""
    print(f"  {title} trade-off (the rule's other parts as chosen): {name}  prec@0.5  "
          "worst no-target kind found")
    for value in grid:
        alt = tuple(float(value) if i == part else x for i, x in enumerate(rule))
        print(f"    {value:4.2f}  {100 * rules[alt]:6.2f}  {100 * worst[alt]:5.1f}%"
              + ("  <- chosen" if alt == rule else ""))


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
    p.add_argument("--max-found", type=float, default=MAX_FOUND_SHARE,
                   help="the found rule keeps every no-target kind of the split at or under this "
                        f"share answered found, when a rule can (default {MAX_FOUND_SHARE}; "
                        "lower leaves a margin for the sampling noise of a validation split)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``refseg-calibrate``; return the exit status (2 on bad input, with the reason)."""
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.max_found <= 1.0:
        print(f"refseg-calibrate: error: --max-found must be a share in [0, 1], got "
              f"{args.max_found}", file=sys.stderr)
        return 2

    try:
        source = open_source(args.dataset, args.data_root, args.split, "skip")
        segmenter = Segmenter.from_checkpoint(args.checkpoint, device=args.device,
                                              threshold=0.5)
        records: list[SampleRecord] = []
        sweep = threshold_sweep(segmenter, source, limit=args.limit or None,
                                progress=not args.no_progress, records=records)
    except (CheckpointError, DataError, ValueError) as exc:
        print(f"refseg-calibrate: error: {exc}", file=sys.stderr)
        return 2
    best = best_threshold(sweep)
    print("threshold  prec@0.5  mean_iou  overall_iou")
    for t, m in sweep.items():
        mark = "  <- best" if t == best else ""
        print(f"{t:9.2f}  {100 * m['prec@0.5']:8.2f}  {100 * m['mean_iou']:8.2f}  "
              f"{100 * m['overall_iou']:11.2f}{mark}")
    rule = None
    if any(not r.target for r in records):  # expressions with no target: choose the found rule
        rules = found_rule_sweep(records, list(sweep), best)
        worst = worst_found_shares(records, list(sweep), best, rules)
        rule = best_found_rule(rules, worst, args.max_found)
        unbound = best_found_rule(rules)
        print(f"found rule at threshold {best:.2f}: a mask of at least {rule[0]:.4f} of the "
              f"image, a peak probability of at least {rule[1]:.2f} and, for a relation, a "
              f"landmark peak of at least {rule[2]:.2f}: prec@0.5 {100 * rules[rule]:.2f}, "
              f"worst no-target kind answered found {100 * worst[rule]:.1f}% (no rule: "
              f"{100 * rules[(0.0, 0.0, 0.0)]:.2f}, {100 * worst[(0.0, 0.0, 0.0)]:.1f}%)")
        _print_trade_off("the peak's", "min_peak", 1, MIN_PEAK_GRID, rule, rules, worst)
        _print_trade_off("the landmark's", "min_landmark_peak", 2, MIN_LANDMARK_PEAK_GRID, rule,
                         rules, worst)
        print("  the cap's trade-off: max found  rule (min_area, min_peak, min_landmark_peak)  "
              "prec@0.5  worst")
        for cap in CAP_GRID:
            best_capped = best_found_rule(rules, worst, cap)
            print(f"    {100 * cap:4.1f}%  {best_capped}  {100 * rules[best_capped]:6.2f}  "
                  f"{100 * worst[best_capped]:5.1f}%"
                  + ("  (no rule reaches the cap: the best over all)"
                     if worst[best_capped] > cap else ""))
        if worst[rule] > args.max_found:
            print(f"  no rule of the grid keeps every no-target kind at or under "
                  f"{100 * args.max_found:.1f}% answered found")
        elif unbound != rule:
            print(f"  the best rule without that cap: {unbound}, prec@0.5 "
                  f"{100 * rules[unbound]:.2f}, worst no-target kind {100 * worst[unbound]:.1f}%")
    if args.write:
        write_threshold(args.checkpoint, best, sweep, rule)
        print(f"wrote threshold {best:.2f} into {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
