"""``refseg-synth``: write a synthetic tabletop dataset (images, depth, masks, expressions)."""

from __future__ import annotations

import argparse
import sys
import time

from refseg_model.synth.writer import add_expression_kinds, write_dataset


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 368x208; got {text!r}"
                                         ) from None
    if width < 32 or height < 24:
        raise argparse.ArgumentTypeError(f"image size {text} is too small (at least 32x24)")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``refseg-synth``."""
    p = argparse.ArgumentParser(
        prog="refseg-synth",
        description="Write a synthetic tabletop dataset of RGB-D scenes with referring "
                    "expressions and exact masks, in the layout read by --dataset synthetic.")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--num-images", type=int, help="number of scenes to draw")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same bytes)")
    p.add_argument("--width", type=int, default=640, help="image width in pixels")
    p.add_argument("--height", type=int, default=480, help="image height in pixels")
    p.add_argument("--wide", type=_size, default=None, metavar="WxH",
                   help="a second, wide camera (e.g. 368x208, 16:9) for --wide-frac of the scenes")
    p.add_argument("--wide-frac", type=float, default=0.0,
                   help="share of the scenes drawn with the --wide camera (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--val-frac", type=float, default=0.1, help="fraction of images in val")
    p.add_argument("--test-frac", type=float, default=0.1, help="fraction of images in test")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--kinds-only", action="store_true",
                   help="add synthetic_kinds_<split>.json to the dataset in --out (written "
                        "without them) and touch nothing else")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``refseg-synth``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.kinds_only:
        return _kinds_only(args)
    if args.num_images is None:
        parser.error("the following arguments are required: --num-images")
    start = time.perf_counter()
    try:
        meta = write_dataset(args.out, args.num_images, seed=args.seed, width=args.width,
                             height=args.height, workers=args.workers, val_frac=args.val_frac,
                             test_frac=args.test_frac, progress=not args.quiet,
                             wide=args.wide, wide_frac=args.wide_frac)
    except (ValueError, OSError) as exc:
        print(f"refseg-synth: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    parts = ", ".join(f"{s} {c['images']} images / {c['expressions']} expressions"
                      for s, c in meta["splits"].items())
    print(f"wrote {meta['num_images']} scenes to {args.out} in {seconds:.1f} s ({parts})")
    return 0


def _kinds_only(args: argparse.Namespace) -> int:
    try:
        counts = add_expression_kinds(args.out, workers=args.workers, progress=not args.quiet)
    except (ValueError, OSError) as exc:
        print(f"refseg-synth: error: {exc}", file=sys.stderr)
        return 2
    parts = ", ".join(f"{s} {n}" for s, n in counts.items())
    print(f"wrote the expression kinds of {args.out} ({parts} expressions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
