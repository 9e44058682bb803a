"""The camera table: one checkpoint scored clean, under each camera condition, and on a 16:9 stream.

    python tools/robustness.py --checkpoint model/refseg_model/weights/tabletop.pt \
        --data-root data/eval_640 --wide-root data/eval_720 --limit 700 --out runs/robustness.json

Every condition of :data:`refseg_model.augment.PERTURBATIONS` is applied to the same samples of the
``test`` split of ``--data-root`` (``refseg-eval --perturb NAME`` does one at a time); the 16:9
row scores the ``test`` split of ``--wide-root`` (the same world drawn by a 1280x720 camera,
``refseg-synth --width 1280 --height 720``). prec@0.5 is over the samples with a target; the
no-target samples give the share answered "found". Prints a markdown table; ``--out`` keeps the
JSON (written atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from refseg_model import Segmenter
from refseg_model.augment import PERTURBATIONS
from refseg_model.data import open_source
from refseg_model.evaluate import evaluate, write_json


def table(rows: dict[str, dict]) -> str:
    """Return the markdown table of ``rows`` (condition -> evaluate() result)."""
    clean = rows["clean"]["present"]["prec@0.5"]
    lines = ["| condition | prec@0.5 | vs clean | overall IoU | no-target found | samples |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in rows.items():
        p = m["present"]
        lines.append(f"| {name} | {100 * p['prec@0.5']:.1f} | {100 * (p['prec@0.5'] - clean):+.1f}"
                     f" | {100 * p['overall_iou']:.1f} | {100 * m['no_target']['found_share']:.1f}"
                     f" | {m['num_samples']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Score every condition; print the table; return the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data-root", required=True, type=Path)
    p.add_argument("--wide-root", type=Path, help="a 16:9 dataset of the same world")
    p.add_argument("--limit", type=int, default=0, help="first N samples of each split")
    p.add_argument("--conditions", default=",".join(PERTURBATIONS),
                   help="comma-separated names (default: all)")
    p.add_argument("--out", type=Path, help="write the JSON here")
    args = p.parse_args(argv)
    segmenter = Segmenter.from_checkpoint(args.checkpoint)

    def predict(rgb, expression):
        return segmenter.predict(rgb, expression).mask

    source = open_source("synthetic", args.data_root, "test")
    limit = args.limit or None
    rows = {"clean": evaluate(predict, source, limit=limit, progress=False)}
    print(f"clean: {100 * rows['clean']['present']['prec@0.5']:.1f}", file=sys.stderr)
    for name in [c for c in args.conditions.split(",") if c]:
        rows[name] = evaluate(predict, source, limit=limit, progress=False, perturb=name)
        print(f"{name}: {100 * rows[name]['present']['prec@0.5']:.1f}", file=sys.stderr)
    if args.wide_root is not None:
        wide = open_source("synthetic", args.wide_root, "test")
        shape = wide.image_size(wide.samples[0])
        rows[f"{shape[1]}x{shape[0]} stream"] = evaluate(predict, wide, limit=limit,
                                                         progress=False)
    if args.out is not None:
        write_json({"checkpoint": str(args.checkpoint), "rows": rows}, args.out)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
