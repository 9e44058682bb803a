"""``refseg-predict``: segment what an expression refers to in one image file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from refseg_model import default_checkpoint_path
from refseg_model.checkpoint import CheckpointError
from refseg_model.config import PRECISIONS
from refseg_model.data import DataError, read_rgb
from refseg_model.drawing import draw_mask
from refseg_model.fileio import write_mask_png, write_png
from refseg_model.inference import Segmenter


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``refseg-predict``."""
    parser = argparse.ArgumentParser(
        prog="refseg-predict",
        description="Segment the object a natural language expression refers to. Writes a "
                    "mono8 PNG mask (255 = target) at the image's size, optionally an overlay.")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file (default: the shipped tabletop model)")
    parser.add_argument("--image", required=True, help="input image (PNG, JPEG, ...)")
    parser.add_argument("--expression", required=True, help='e.g. "the red cup on the left"')
    parser.add_argument("--out", required=True, help="output mask PNG")
    parser.add_argument("--overlay", default=None, help="output overlay PNG (image + mask)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="foreground probability threshold (default 0.5)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="numeric path: auto (the fastest that keeps the answers here: bf16 "
                             "on CPUs with AMX, fp16 on CUDA, else fp32), fp32, bf16 or fp16")
    return parser


def overlay_image(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return a copy of ``rgb`` with the mask tinted red and outlined in yellow."""
    return draw_mask(rgb.copy(), mask, tint=(255, 0, 0), outline=(255, 255, 0), alpha=0.5)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refseg-predict``."""
    args = build_parser().parse_args(argv)
    try:
        rgb = read_rgb(args.image)
        segmenter = Segmenter.from_checkpoint(args.checkpoint or default_checkpoint_path(),
                                              device=args.device, threshold=args.threshold,
                                              precision=args.precision,
                                              compile="off")  # one frame: never pays off
        pred = segmenter.predict(rgb, args.expression)
        for path in filter(None, (args.out, args.overlay)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_mask_png(args.out, pred.mask)
        if args.overlay:
            write_png(args.overlay, cv2.cvtColor(overlay_image(rgb, pred.mask),
                                                 cv2.COLOR_RGB2BGR))
    except (CheckpointError, DataError, ValueError, TypeError, OSError) as err:
        print(f"refseg-predict: error: {err}", file=sys.stderr)
        return 2
    area = int(pred.mask.sum())
    print(f"refseg-predict: {area} pixels ({100.0 * area / pred.mask.size:.1f}% of the image), "
          f"score {pred.score:.3f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
