"""``refseg-eval``: score a checkpoint (or a baseline) on a dataset split, as Table 1 of the paper.

Prints prec@0.5 ... prec@0.9, overall IoU, mean IoU and the number of samples; ``--json OUT``
writes them (keys ``prec@0.5`` ... ``prec@0.9``, ``overall_iou``, ``mean_iou``, ``num_samples``,
fractions in 0..1) atomically; ``--save-masks DIR`` writes ``<sample_id>.png`` per sample.
``--by kind`` / ``--by size`` (repeatable; also ``strategy``) prints one table per grouping and
adds ``by_kind`` / ``by_size`` sections to the JSON (see :mod:`refseg_model.breakdown`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from refseg_model.augment import PERTURBATIONS
from refseg_model.baselines import BASELINES, baseline_predictor
from refseg_model.breakdown import GROUPINGS, SIZE_EDGES, check_size_edges, format_group_table
from refseg_model.checkpoint import CheckpointError
from refseg_model.cli.common import add_data_arguments, data_spec
from refseg_model.config import PRECISIONS, ConfigError
from refseg_model.data import DataError
from refseg_model.evaluate import evaluate, write_json
from refseg_model.inference import Segmenter
from refseg_model.metrics import format_table_row, table_header


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``refseg-eval``."""
    p = argparse.ArgumentParser(
        prog="refseg-eval",
        description="Evaluate a refseg checkpoint or a baseline on a split: prec@0.5..0.9, "
                    "overall IoU, mean IoU (Table 1 of Hu et al., ECCV 2016).")
    p.add_argument("--checkpoint", type=Path,
                   help="model checkpoint (refseg-train), or a per-word checkpoint with "
                        "--baseline per-word-*")
    add_data_arguments(p, split="test")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    p.add_argument("--save-masks", type=Path, metavar="DIR",
                   help="write <sample_id>.png per sample (255 = predicted target)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threshold", type=float, default=None,
                   help="foreground probability (default: the checkpoint's calibrated "
                        "threshold, else 0.5)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="numeric path: auto (the fastest that keeps the answers here: bf16 on "
                        "CPUs with AMX, fp16 on CUDA, else fp32), fp32, bf16 or fp16 (CUDA)")
    p.add_argument("--stage", choices=("lowres", "highres"), default=None,
                   help="lowres: score the coarse response map upsampled bilinearly (Table "
                        "1's low-resolution row); default: as the checkpoint was trained")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N samples only")
    p.add_argument("--baseline", choices=BASELINES,
                   help="evaluate a baseline instead of the model")
    p.add_argument("--name", help="row label in the printed table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--by", action="append", default=[], choices=GROUPINGS,
                   help="also break the metrics down by expression kind, generator strategy "
                        "or target area (repeatable)")
    p.add_argument("--perturb", choices=tuple(PERTURBATIONS), default=None,
                   help="score under a camera condition applied to every image (sensor noise, "
                        "blur, JPEG, white balance, exposure)")
    p.add_argument("--size-edges", default=",".join(map(str, SIZE_EDGES)), metavar="A,B,...",
                   help="--by size: band edges in pixels at the original image size")
    return p


def _predictor(args: argparse.Namespace):
    if args.baseline:
        return baseline_predictor(args.baseline, args.checkpoint, args.device,
                                  0.5 if args.threshold is None else args.threshold)
    if args.checkpoint is None:
        raise ValueError("--checkpoint is required (or give --baseline whole-image)")

    segmenter = Segmenter.from_checkpoint(args.checkpoint, device=args.device,
                                          threshold=args.threshold, precision=args.precision,
                                          stage=args.stage)
    return lambda rgb, expression: segmenter.predict(rgb, expression).mask


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``refseg-eval``; return the exit status (2 on bad input, with the reason)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.limit < 0:
        print("refseg-eval: error: --limit must be >= 0", file=sys.stderr)
        return 2
    try:
        source = data_spec(args).open()
        if len(source) == 0:
            raise DataError(f"no samples in {args.dataset} split {args.split!r} under "
                            f"{args.data_root}")
        size_edges = check_size_edges(args.size_edges.split(","))
        predict_fn = _predictor(args)
        metrics = evaluate(predict_fn, source, save_masks=args.save_masks,
                           progress=not args.no_progress, limit=args.limit or None,
                           by=args.by, size_edges=size_edges, perturb=args.perturb)
    except (CheckpointError, ConfigError, DataError, ValueError) as exc:
        print(f"refseg-eval: error: {exc}", file=sys.stderr)
        return 2
    name = args.name or args.baseline or (args.checkpoint.stem if args.checkpoint else "model")
    print(table_header())
    print(format_table_row(name, metrics))
    if metrics["no_target"]["num_samples"]:
        print(format_table_row(f"{name} (targets present)", metrics["present"]))
        print(f"no-target expressions: {metrics['no_target']['num_samples']}, answered found: "
              f"{100 * metrics['no_target']['found_share']:.1f}%")
    for grouping in dict.fromkeys(args.by):
        print()
        print(format_group_table(grouping, metrics[f"by_{grouping}"]))
    if args.json:
        write_json(metrics, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
