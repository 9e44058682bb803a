"""Look before changing: does the landmark of a relation, grounded on its own, say it is there.

    python tools/ab/landmark_peaks.py CKPT [DATA_ROOT] [OUT_JSON]

For every ``relation`` and ``absent_relation`` sample of the ``test`` split of DATA_ROOT (default
``data/eval_640``), runs ``Segmenter.predict`` and reads the landmark's peak probability that the
network computes anyway (``Prediction.landmark_peak``). Prints the peak's percentiles per kind
and, for landmark thresholds 0-0.9, the share answered found and the share right (IoU >= 0.5):
what a ``min_landmark_peak`` in the found rule would give. The rows go to OUT_JSON (default
``runs/landmark_peaks.json``). docs/RESULTS.md section 2f.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from refseg_model import Segmenter
from refseg_model.data import open_source
from refseg_model.metrics import intersection_union

KINDS = ("relation", "absent_relation")


def main(argv: list[str]) -> int:
    """Run the table."""
    if not argv:
        sys.exit(__doc__)
    segmenter = Segmenter.from_checkpoint(argv[0])
    segmenter.found_rule.pop("min_landmark_peak", None)  # the rule under study: off
    source = open_source("synthetic", argv[1] if len(argv) > 1 else "data/eval_640", "test")
    rows = []
    for sample in source.samples:
        kind = source.expression_kind(sample).kind
        loaded = source.load(sample) if kind in KINDS else None
        if loaded is None:
            continue
        image, truth = loaded
        answer = segmenter.predict(image, sample.expression)
        inter, union = intersection_union(answer.mask, truth)
        rows.append({"kind": kind, "expression": sample.expression, "found": answer.found,
                     "right": bool(truth.any() and union and inter / union >= 0.5),
                     "landmark_peak": answer.landmark_peak})
    out = Path(argv[2] if len(argv) > 2 else "runs/landmark_peaks.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows))
    for kind in KINDS:
        group = [r for r in rows if r["kind"] == kind and r["landmark_peak"] is not None]
        if not group:
            continue
        peaks = [r["landmark_peak"] for r in group]
        print(f"{kind}: {len(group)} samples; landmark peak percentiles 5/25/50/75/90: "
              + " / ".join(f"{p:.2f}" for p in np.percentile(peaks, [5, 25, 50, 75, 90])))
        for t in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9):
            kept = [r for r in group if r["landmark_peak"] >= t]
            print(f"  landmark >= {t:.1f}: answered found "
                  f"{100 * sum(r['found'] for r in kept) / len(group):5.1f}%, right "
                  f"{100 * sum(r['right'] for r in kept) / len(group):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
