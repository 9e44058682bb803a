"""A/B at inference: exposure compensation before the network, against none.

    python tools/ab/autogain.py CKPT [DATA_ROOT] [LIMIT] [OUT_JSON]

Scores ``CKPT`` on the first LIMIT test samples of DATA_ROOT (default ``data/eval_640``, 600) clean
and under the camera conditions exposure x0.6 / x1.3 (``refseg_model.augment.PERTURBATIONS``),
with three ways of feeding the frame to the network:

- ``plain``: the frame as it comes (what the node does);
- ``full``: a gain that brings the frame's mean luma to the training set's (121; clipped to
  x0.6-x1.7), the whole correction;
- ``deadband``: a gain only for frames whose mean luma lies outside the 5-95% range of the
  training scenes (93-150), up to that range's edge: a normal scene is left as it is.

Prints prec@0.5 over samples with a target and the share of no-target samples answered found;
writes them to OUT_JSON (default ``runs/autogain.json``). The same samples for every row, so
differences between rows are paired.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from refseg_model import Segmenter
from refseg_model.augment import exposure
from refseg_model.data import open_source
from refseg_model.evaluate import evaluate

TRAIN_LUMA, LUMA_RANGE, GAIN_RANGE = 121.0, (93.0, 150.0), (0.6, 1.7)


def luma(rgb: np.ndarray) -> float:
    """Mean Rec. 601 luma of an RGB uint8 frame."""
    return float((rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).mean())


def gain_full(level: float) -> float:
    """Return the gain that brings mean luma ``level`` to the training set's."""
    return float(np.clip(TRAIN_LUMA / max(level, 1.0), *GAIN_RANGE))


def gain_deadband(level: float) -> float:
    """Return the gain to the nearest edge of the training range (1 inside it)."""
    low, high = LUMA_RANGE
    target = min(max(level, low), high)
    return float(np.clip(target / max(level, 1.0), *GAIN_RANGE))


def main() -> None:
    """Run the table."""
    ckpt = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else "data/eval_640"
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    out_path = Path(sys.argv[4] if len(sys.argv) > 4 else "runs/autogain.json")
    seg = Segmenter.from_checkpoint(ckpt)
    source = open_source("synthetic", root, "test")

    def with_gain(rule):
        def predict(rgb, expression):
            gain = 1.0 if rule is None else rule(luma(rgb))
            frame = exposure(rgb, gain) if abs(gain - 1.0) > 0.02 else rgb
            return seg.predict(frame, expression).mask
        return predict

    rules = {"plain": None, "full": gain_full, "deadband": gain_deadband}
    table = {}
    for condition in (None, "exposure0.6", "exposure1.3"):
        for name, rule in rules.items():
            m = evaluate(with_gain(rule), source, limit=limit, progress=False, perturb=condition)
            row = {"present_prec@0.5": m["present"]["prec@0.5"],
                   "no_target_found": m["no_target"]["found_share"]}
            table[f"{condition or 'clean'}/{name}"] = row
            print(f"{condition or 'clean':12s} {name:9s} present prec@0.5 "
                  f"{100 * row['present_prec@0.5']:.1f}  no target found "
                  f"{100 * row['no_target_found']:.1f}%", flush=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1))
    tmp.replace(out_path)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
