"""A/B at inference: exposure compensation before the network, against none.

    python tools/ab/autogain.py CKPT [DATA_ROOT] [LIMIT] [OUT_JSON]

Scores ``CKPT`` on the first LIMIT test samples of DATA_ROOT (default ``data/eval_640``, 600) clean
and under the camera conditions exposure x0.6 / x1.3 (``refseg_model.augment.PERTURBATIONS``),
with three ways of feeding the frame to the network:

- ``plain``: the frame as it comes (the checkpoint's own ``exposure_range`` is switched off, so
  the rows differ only in the rule under test);
- ``full``: a gain that brings the frame's mean luma to the training set's (121), the whole
  correction;
- ``deadband``: a gain only for frames whose mean luma lies outside the 5-95% range of the
  training scenes (93-150), up to that range's edge: a normal scene is left as it is.

Prints prec@0.5 over samples with a target and the share of no-target samples answered found;
writes them to OUT_JSON (default ``runs/autogain.json``). The same samples for every row, so
differences between rows are paired.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from refseg_model import Segmenter
from refseg_model.data import open_source
from refseg_model.evaluate import evaluate
from refseg_model.preprocess import compensate_exposure

# "full": every frame to the training set's mean luma (a range of one point); "deadband": the
# shipped rule, frames outside the training scenes' 5-95% range to its edge. Both through the
# shipped ``compensate_exposure`` (gain clipped to x0.6-x1.7). The first run of this table
# (docs/RESULTS.md section 4) measured luma on every pixel, not every 4th: the same rules.
RULES = {"plain": None, "full": (121.0, 121.0), "deadband": (93.0, 150.0)}


def main() -> None:
    """Run the table."""
    ckpt = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else "data/eval_640"
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    out_path = Path(sys.argv[4] if len(sys.argv) > 4 else "runs/autogain.json")
    seg = Segmenter.from_checkpoint(ckpt)
    seg.config = dataclasses.replace(seg.config, exposure_range=None)  # the rows' rule only
    source = open_source("synthetic", root, "test")

    def with_range(luma_range):
        def predict(rgb, expression):
            return seg.predict(compensate_exposure(rgb, luma_range), expression).mask
        return predict

    table = {}
    for condition in (None, "exposure0.6", "exposure1.3"):
        for name, luma_range in RULES.items():
            m = evaluate(with_range(luma_range), source, limit=limit, progress=False,
                         perturb=condition)
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
