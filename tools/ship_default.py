"""Export a training checkpoint as the shipped default: weights, config, vocabulary; no optimiser.

python tools/ship_default.py runs/tabletop/best.pt model/refseg_model/weights/tabletop.pt
"""

import sys

from refseg_model.checkpoint import load_checkpoint, save_inference_checkpoint


def main(argv=None) -> int:
    """Read ``SRC``, write ``DST`` (float32 weights, written atomically), print its size."""
    src, dst = (sys.argv[1:] if argv is None else argv)[:2]
    path = save_inference_checkpoint(load_checkpoint(src), dst)
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {src}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
