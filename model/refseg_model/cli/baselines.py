"""``refseg-baselines``: train the per-word segmentation baseline of the paper's Table 1.

Score it (and the whole-image baseline) with ``refseg-eval --baseline ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from refseg_model.baselines import train_per_word
from refseg_model.checkpoint import CheckpointError
from refseg_model.cli.common import add_data_arguments, data_spec
from refseg_model.config import ConfigError, load_config
from refseg_model.data import DataError


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``refseg-baselines``."""
    parser = argparse.ArgumentParser(
        prog="refseg-baselines",
        description="Train the per-word segmentation baseline (score it with refseg-eval "
                    "--baseline per-word-average|per-word-intersection|per-word-union).")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the per-word FCN")
    add_data_arguments(train, split="train")
    train.add_argument("--out", required=True, type=Path, help="run folder (perword.pt goes here)")
    train.add_argument("--config", default="tabletop",
                       help="preset name or YAML file; its 'model' section gives the backbone")
    train.add_argument("--max-iters", type=int, default=1000)
    train.add_argument("--num-words", type=int, default=100)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=0.01)
    train.add_argument("--device", default="auto")
    train.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``refseg-baselines train ...``; return the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config).model
        source = data_spec(args).open()
        result = train_per_word(source, cfg, args.out, args.max_iters, num_words=args.num_words,
                                batch_size=args.batch_size, lr=args.lr, device=args.device,
                                seed=args.seed)
    except (ConfigError, DataError, CheckpointError, ValueError) as exc:
        print(f"refseg-baselines: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result['checkpoint']} ({len(result['words'])} words, final loss "
          f"{result['losses'][-1]:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
