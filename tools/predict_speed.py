"""Frames per second of ``Segmenter.predict`` for one or more checkpoints, A against B.

    python tools/predict_speed.py CKPT_A [CKPT_B ...]

Times each checkpoint on the first 10 frames of ``data/eval_640`` (640x480) and ``data/eval_720``
(1280x720), 30 calls after 3 warm-up calls, in 3 rounds that alternate the checkpoints (so a
change of load falls on all of them alike); prints the median of the rounds' medians.
"""

from __future__ import annotations

import glob
import sys
import time

import cv2
import numpy as np
import torch

from refseg_model.inference import Segmenter


def frames(root: str) -> list[np.ndarray]:
    """Return the first 10 images of a synthetic dataset folder as RGB arrays."""
    paths = sorted(glob.glob(f"{root}/images/*.png"))[:10]
    if not paths:
        sys.exit(f"no images in {root}/images: write it with refseg-synth (docs/RESULTS.md)")
    return [cv2.imread(p)[..., ::-1].copy() for p in paths]


def main(argv: list[str]) -> int:
    """Time every checkpoint of ``argv``."""
    if not argv:
        sys.exit(__doc__)
    torch.set_num_threads(2)
    sets = {"640x480": frames("data/eval_640"), "1280x720": frames("data/eval_720")}
    segmenters = {c: Segmenter.from_checkpoint(c) for c in argv}
    medians: dict[tuple[str, str], list[float]] = {}
    for _ in range(3):
        for ckpt, seg in segmenters.items():
            for name, images in sets.items():
                for image in images[:3]:
                    seg.predict(image, "the red cup on the left")
                times = []
                for i in range(30):
                    start = time.perf_counter()
                    seg.predict(images[i % len(images)], "the red cup on the left")
                    times.append(time.perf_counter() - start)
                medians.setdefault((ckpt, name), []).append(float(np.median(times)))
    for (ckpt, name), rounds in medians.items():
        print(f"{ckpt} {name}: {1 / np.median(rounds):.1f} frames/s "
              f"(rounds {', '.join(f'{1 / r:.1f}' for r in rounds)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
