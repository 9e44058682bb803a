"""``refseg-train``: train the network of the paper (or the light tabletop model)."""

from __future__ import annotations

import argparse
import sys

from refseg_model.config import preset_names
from refseg_model.data import DATASETS


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``refseg-train``."""
    parser = argparse.ArgumentParser(
        prog="refseg-train",
        description="Train the text-objects segmentation network in two stages (lowres on "
                    "coarse labels, then highres with the bilinear-initialised deconvolution). "
                    "Writes RUN_DIR/config.yaml, metrics.jsonl, loss_curve.png, last.pt "
                    "(and best.pt with --val-split). Under torchrun the training is data "
                    "parallel.")
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="dataset layout")
    parser.add_argument("--data-root", required=True, help="dataset folder")
    parser.add_argument("--out", required=True, help="run folder (RUN_DIR)")
    parser.add_argument("--config", default="tabletop",
                        help=f"preset name ({', '.join(preset_names())}) or a YAML file "
                             "(default: tabletop)")
    parser.add_argument("--stage", default="both", choices=("lowres", "highres", "both"),
                        help="which stage(s) to train (default: both)")
    parser.add_argument("--max-iters", type=int, default=None,
                        help="iterations of each stage (overrides the config)")
    parser.add_argument("--lowres-iters", type=int, default=None, help="iterations of lowres")
    parser.add_argument("--highres-iters", type=int, default=None, help="iterations of highres")
    parser.add_argument("--resume", action="store_true",
                        help="continue exactly from RUN_DIR/last.pt")
    parser.add_argument("--init", default=None,
                        help="checkpoint to start from (e.g. RUN_DIR/lowres.pt for --stage "
                             "highres)")
    parser.add_argument("--split", default="train", help="training split (default: train)")
    parser.add_argument("--val-split", default=None,
                        help="validation split: overall IoU at each checkpoint, best.pt")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size per process")
    parser.add_argument("--lr", type=float, default=None, help="base learning rate")
    parser.add_argument("--workers", type=int, default=None, help="data loader workers")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="write last.pt every N iterations")
    parser.add_argument("--on-error", default="skip", choices=("skip", "raise"),
                        help="bad samples: skip them (logged) or stop")
    parser.add_argument("--vocab", default=None,
                        help="vocabulary file, one word a line (default: built from the "
                             "training expressions)")
    parser.add_argument("--backbone-weights", default=None,
                        help="ImageNet weights file of the backbone (torchvision state dict)")
    parser.add_argument("--pretrained", dest="pretrained", action="store_true", default=None,
                        help="initialise the backbone from ImageNet weights")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                        help="random initialisation of the backbone")
    parser.add_argument("--freeze-backbone", dest="freeze_backbone", action="store_true",
                        default=None, help="keep the convolutional layers fixed")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refseg-train``."""
    args = build_parser().parse_args(argv)
    from refseg_model.backbones import BackboneWeightsError
    from refseg_model.checkpoint import CheckpointError
    from refseg_model.config import ConfigError
    from refseg_model.data import DataError
    from refseg_model.train import main as train_main

    try:
        return train_main(args)
    except (ConfigError, CheckpointError, DataError, BackboneWeightsError, ValueError) as err:
        print(f"refseg-train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("refseg-train: interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
