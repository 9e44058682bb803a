"""``refseg-eval``: score a checkpoint (or a baseline) on a dataset split, as Table 1 of the paper.

Prints prec@0.5 ... prec@0.9, overall IoU, mean IoU and the number of samples; ``--json OUT``
writes them (keys ``prec@0.5`` ... ``prec@0.9``, ``overall_iou``, ``mean_iou``, ``num_samples``,
fractions in 0..1) atomically; ``--save-masks DIR`` writes ``<sample_id>.png`` per sample.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

DATASETS = ("referit", "refer", "synthetic")
BASELINES = ("whole-image", "per-word-average", "per-word-intersection", "per-word-union")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``refseg-eval``."""
    p = argparse.ArgumentParser(
        prog="refseg-eval",
        description="Evaluate a refseg checkpoint or a baseline on a split: prec@0.5..0.9, "
                    "overall IoU, mean IoU (Table 1 of Hu et al., ECCV 2016).")
    p.add_argument("--checkpoint", type=Path,
                   help="model checkpoint (refseg-train), or a per-word checkpoint with "
                        "--baseline per-word-*")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-root", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    p.add_argument("--save-masks", type=Path, metavar="DIR",
                   help="write <sample_id>.png per sample (255 = predicted target)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threshold", type=float, default=0.5, help="foreground probability")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="numeric path: auto (the fastest that keeps the answers here: bf16 on "
                        "CPUs with AMX, fp16 on CUDA, else fp32), fp32, bf16 or fp16 (CUDA)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N samples only")
    p.add_argument("--baseline", choices=BASELINES,
                   help="evaluate a baseline instead of the model")
    p.add_argument("--name", help="row label in the printed table")
    p.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                   help="bad data: skip it with a warning (default) or stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--refer-dataset", default="refcoco",
                   help="refer layout: refclef, refcoco, refcoco+ or refcocog")
    p.add_argument("--split-by", help="refer layout: refs(<split_by>).p (unc, google, umd...)")
    p.add_argument("--image-dir", type=Path, help="refer layout: image folder override")
    return p


def _predictor(args: argparse.Namespace):
    if args.baseline:
        from refseg_model.baselines import baseline_predictor

        return baseline_predictor(args.baseline, args.checkpoint, args.device, args.threshold)
    if args.checkpoint is None:
        raise ValueError("--checkpoint is required (or give --baseline whole-image)")
    from refseg_model.inference import Segmenter

    segmenter = Segmenter.from_checkpoint(args.checkpoint, device=args.device,
                                          threshold=args.threshold, precision=args.precision)
    return lambda rgb, expression: segmenter.predict(rgb, expression).mask


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``refseg-eval``; return the exit status (2 on bad input, with the reason)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from refseg_model.checkpoint import CheckpointError
    from refseg_model.config import ConfigError
    from refseg_model.data import DataError, open_source
    from refseg_model.evaluate import evaluate, write_json
    from refseg_model.metrics import format_table_row, table_header

    if args.limit < 0:
        print("refseg-eval: error: --limit must be >= 0", file=sys.stderr)
        return 2
    kw = {}
    if args.dataset == "refer":
        kw = {"dataset": args.refer_dataset, "split_by": args.split_by,
              "image_dir": args.image_dir}
    try:
        source = open_source(args.dataset, args.data_root, args.split, args.on_error, **kw)
        if len(source) == 0:
            raise DataError(f"no samples in {args.dataset} split {args.split!r} under "
                            f"{args.data_root}")
        predict_fn = _predictor(args)
        metrics = evaluate(predict_fn, source, save_masks=args.save_masks,
                           progress=not args.no_progress, limit=args.limit or None)
    except (CheckpointError, ConfigError, DataError, ValueError) as exc:
        print(f"refseg-eval: error: {exc}", file=sys.stderr)
        return 2
    name = args.name or args.baseline or (args.checkpoint.stem if args.checkpoint else "model")
    print(table_header())
    print(format_table_row(name, metrics))
    if args.json:
        write_json(metrics, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
