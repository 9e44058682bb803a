"""``refseg-train``: train the network of the paper (or the light tabletop model)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from refseg_model.backbones import BackboneWeightsError
from refseg_model.checkpoint import CheckpointError
from refseg_model.cli.common import add_data_arguments, data_spec, report_progress
from refseg_model.config import PRECISIONS, ConfigError, RunConfig, load_config, preset_names
from refseg_model.data import DataError
from refseg_model.train import STAGE_CHOICES, TrainOptions, train

STAGE_HELP = ("which stage(s) to train: det (box crops, the released code's first stage), "
              "lowres, highres, both (lowres then highres) or all (det, lowres, highres); "
              "default: both")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``refseg-train``."""
    parser = argparse.ArgumentParser(
        prog="refseg-train",
        description="Train the text-objects segmentation network in stages (det on box crops, "
                    "lowres on coarse labels, highres with the bilinear-initialised "
                    "deconvolution). Writes RUN_DIR/config.yaml, metrics.jsonl, loss_curve.png, "
                    "last.pt, det.pt / lowres.pt (and best.pt with --val-split). Under torchrun "
                    "the training is data parallel.")
    add_data_arguments(parser, split="train")
    parser.add_argument("--out", required=True, help="run folder (RUN_DIR)")
    parser.add_argument("--config", default="tabletop",
                        help=f"preset name ({', '.join(preset_names())}) or a YAML file "
                             "(default: tabletop)")
    parser.add_argument("--stage", default="both", choices=STAGE_CHOICES, help=STAGE_HELP)
    parser.add_argument("--max-iters", type=int, default=None,
                        help="iterations of each stage (overrides the config)")
    parser.add_argument("--det-iters", type=int, default=None, help="iterations of det")
    parser.add_argument("--lowres-iters", type=int, default=None, help="iterations of lowres")
    parser.add_argument("--highres-iters", type=int, default=None, help="iterations of highres")
    parser.add_argument("--resume", action="store_true",
                        help="continue exactly from RUN_DIR/last.pt")
    parser.add_argument("--init", default=None,
                        help="checkpoint to start from (e.g. RUN_DIR/det.pt for --stage lowres, "
                             "RUN_DIR/lowres.pt for --stage highres)")
    parser.add_argument("--val-split", default=None,
                        help="validation split: overall IoU at each checkpoint, best.pt")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size per process (every stage)")
    parser.add_argument("--lr", type=float, default=None, help="base learning rate (every stage)")
    parser.add_argument("--workers", type=int, default=None, help="data loader workers")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="write last.pt every N iterations")
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
    parser.add_argument("--time-budget", dest="time_budget_s", type=float, default=None,
                        help="seconds of training per stage (equal-time A/Bs; a cosine "
                             "schedule then runs over the time)")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="numeric path of training (default: the config's; auto: bf16 "
                             "autocast on CUDA (fp16 without bf16) and on CPUs with AMX, else "
                             "fp32)")
    return parser


def resolve_run_config(args: argparse.Namespace) -> RunConfig:
    """Return the preset / YAML configuration with the command-line overrides applied.

    ``--batch-size`` and ``--lr`` apply to every stage (they replace per-stage values too);
    iterations are passed to :func:`refseg_model.train.train` apart (:func:`stage_iters`).
    """
    run = load_config(args.config)
    model = {name: getattr(args, name) for name in ("pretrained", "freeze_backbone")
             if getattr(args, name) is not None}
    if args.backbone_weights:
        model["backbone_weights"] = str(args.backbone_weights)
    train = {name: getattr(args, name) for name in ("batch_size", "lr", "workers", "seed",
                                                    "checkpoint_every", "precision",
                                                    "time_budget_s")
             if getattr(args, name) is not None}
    stages = {stage: {k: v for k, v in overrides.items() if k not in train}
              for stage, overrides in run.train.stages.items()}
    return RunConfig(dataclasses.replace(run.model, **model),
                     dataclasses.replace(run.train, **train, stages=stages))


def stage_iters(args: argparse.Namespace) -> dict[str, int]:
    """Return the iterations given on the command line, per stage name."""
    iters = {}
    for stage in ("det", "lowres", "highres"):
        value = getattr(args, f"{stage}_iters")
        if value is None:
            value = args.max_iters
        if value is not None:
            iters[stage] = value
    return iters


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refseg-train``."""
    args = build_parser().parse_args(argv)
    try:
        options = TrainOptions(stage=args.stage, resume=args.resume, init=args.init,
                               val_split=args.val_split, vocab=args.vocab, device=args.device,
                               threads=args.threads, iters=stage_iters(args),
                               time_budget_s=args.time_budget_s)
        with report_progress("refseg-train"):
            train(resolve_run_config(args), data_spec(args), args.out, options)
        return 0
    except (ConfigError, CheckpointError, DataError, BackboneWeightsError, ValueError) as err:
        print(f"refseg-train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("refseg-train: interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
