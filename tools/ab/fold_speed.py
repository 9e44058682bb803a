"""A/B of the folded classifier layer at inference: ``Segmenter.predict``, fold against concat.

    python tools/ab/fold_speed.py [CKPT]

``B`` (new) is the network as shipped: ``TextObjSegModel._classifier_hidden`` folds the first
1x1 layer of the classifier over [visual, spatial, text, product]. ``A`` (old) builds the fused
map and runs the 1x1 convolution on it, as before 2026-12-04 (the same function, to rounding).
The same segmenter, weights and frames (the first 10 of ``data/eval_640`` and ``data/eval_720``),
2 threads; 4 rounds that alternate A and B (a change of load falls on both), 30 calls each after
3 warm-up calls; prints the median of the rounds' medians in ms and frames/s.
"""

from __future__ import annotations

import glob
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from refseg_model.inference import Segmenter
from refseg_model.network import TextObjSegModel

COMMAND = "the red cup on the left"


def concat_layer(model, features, tokens):
    """Return the classifier's first layer on the concatenated map (arm A)."""
    return F.relu(model.classifier.mlp1(model._fused(features, tokens)))


def main(argv: list[str]) -> int:
    """Run the A/B."""
    torch.set_num_threads(2)
    segmenter = Segmenter.from_checkpoint(argv[0] if argv else
                                          "model/refseg_model/weights/tabletop.pt")
    arms = {"A concat": concat_layer, "B folded": TextObjSegModel._classifier_hidden}
    try:
        for root in ("data/eval_640", "data/eval_720"):
            images = [cv2.imread(p)[..., ::-1].copy()
                      for p in sorted(glob.glob(f"{root}/images/*.png"))[:10]]
            if not images:
                sys.exit(f"no images in {root}: write it with refseg-synth (docs/RESULTS.md)")
            medians: dict[str, list[float]] = {name: [] for name in arms}
            for _ in range(4):
                for name, layer in arms.items():
                    TextObjSegModel._classifier_hidden = layer
                    for image in images[:3]:
                        segmenter.predict(image, COMMAND)
                    times = []
                    for i in range(30):
                        start = time.perf_counter()
                        segmenter.predict(images[i % len(images)], COMMAND)
                        times.append(time.perf_counter() - start)
                    medians[name].append(1000 * float(np.median(times)))
            for name, rounds in medians.items():
                ms = float(np.median(rounds))
                print(f"{root} {name}: {ms:.1f} ms, {1000 / ms:.1f} frames/s "
                      f"(rounds {', '.join(f'{r:.1f}' for r in rounds)} ms)")
    finally:
        TextObjSegModel._classifier_hidden = arms["B folded"]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
