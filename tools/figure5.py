"""A figure like the paper's Fig. 5: input, response map, prediction, ground truth.

Scores the first ``--pool`` test samples, then draws ``--rows`` of them: the best, spread over the
IoU range, and the worst (failures), each row with its expression and IoU.

    python tools/figure5.py --checkpoint model/refseg_model/weights/tabletop.pt \
        --data-root data/synth_eval --out docs/img/figure5.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from refseg_model import Segmenter
from refseg_model.cli.common import add_data_arguments, data_spec
from refseg_model.fileio import write_png
from refseg_model.metrics import mask_iou

TILE_W, TILE_H, CAPTION = 256, 192, 22


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--checkpoint', required=True)
    add_data_arguments(p, split='test', dataset='synthetic')
    p.add_argument('--pool', type=int, default=300, help='samples scored to choose from')
    p.add_argument('--rows', type=int, default=12, help='samples drawn')
    p.add_argument('--failures', type=int, default=4, help='of which the lowest-IoU ones')
    p.add_argument('--device', default='auto')
    p.add_argument('--out', type=Path, required=True)
    return p.parse_args(argv)


def tile(image: np.ndarray) -> np.ndarray:
    """Resize an RGB (or gray) picture to one tile."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return cv2.resize(image, (TILE_W, TILE_H), interpolation=cv2.INTER_AREA)


def heat(probs: np.ndarray) -> np.ndarray:
    """Colour a probability map in [0, 1] (the response map) as RGB."""
    colour = cv2.applyColorMap((np.clip(probs, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)


def white(mask: np.ndarray) -> np.ndarray:
    """Return a boolean mask as a black-and-white RGB picture."""
    return np.repeat(mask[:, :, None], 3, axis=2).astype(np.uint8) * 255


def caption(width: int, text: str) -> np.ndarray:
    """Return a white strip with black text."""
    strip = np.full((CAPTION, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def choose(ious: list[float], rows: int, failures: int) -> list[int]:
    """Return the indices to draw: the passing range sampled evenly, then the worst."""
    order = list(np.argsort(ious)[::-1])
    good = [i for i in order if ious[i] >= 0.5]
    bad = order[::-1][:failures]
    n_good = rows - len(bad)
    picks = [good[int(k)] for k in np.linspace(0, len(good) - 1, n_good)] if good else []
    return list(dict.fromkeys(picks + bad))


def main(argv=None) -> int:
    """Write the figure."""
    args = parse_args(argv)
    seg = Segmenter.from_checkpoint(args.checkpoint, device=args.device)
    source = data_spec(args).open()
    samples = source.samples[:args.pool]
    results = []
    for sample in samples:
        loaded = source.load(sample)
        if loaded is None:
            continue
        rgb, gt = loaded
        pred = seg.predict(rgb, sample.expression)
        results.append((sample, rgb, gt, pred, mask_iou(pred.mask, gt)))
    if not results:
        print('no loadable samples', file=sys.stderr)
        return 1
    rows = []
    header = np.concatenate([caption(TILE_W, t) for t in
                             ('input', 'response map', 'prediction', 'ground truth')], axis=1)
    rows.append(header)
    for i in choose([r[4] for r in results], args.rows, args.failures):
        sample, rgb, gt, pred, iou = results[i]
        row = np.concatenate([tile(rgb), tile(heat(pred.probs)), tile(white(pred.mask)),
                              tile(white(gt))], axis=1)
        rows.append(caption(row.shape[1], f'"{sample.expression}"  IoU {iou:.2f}'))
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    print(f'wrote {args.out} ({len(rows) // 2} samples from {len(results)} scored)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
