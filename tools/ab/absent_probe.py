"""Probe no-target commands the generator did not write: is the model fooled by them.

For each scene of a synthetic split, commands whose referent is absent although every word is
known: a colour no object has, alone ("the purple one"), and an absent category in a position
phrase ("the jar on the left" with no jar). Prints the share answered ``found`` per probe kind
(the generator's own no-target kinds are in ``refseg-eval --by kind``; since generator version 3
it writes both of these). A size word that does not fit the scene's only object of a category
("the small cup" beside one large cup) is no probe: size words are relative, and a person hands
over that cup.

    python tools/ab/absent_probe.py --checkpoint model/refseg_model/weights/tabletop.pt \
        --data-root data/eval_640 [--limit 120]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from refseg_model.inference import Segmenter
from refseg_model.synth.objects import CATEGORIES, COLOURS, NOUNS


def probes(scene: dict, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Return (probe kind, command) pairs with no referent in ``scene``."""
    objs = scene["objects"]
    colours = {o["colour"] for o in objs}
    cats = {o["category"] for o in objs}
    out = []
    absent_colours = sorted(set(COLOURS) - colours)
    if absent_colours:
        col = absent_colours[int(rng.integers(len(absent_colours)))]
        out.append(("absent colour alone", f"pick up the {col} {rng.choice(['one', 'object'])}"))
    absent_cats = sorted(set(CATEGORIES) - cats)
    if absent_cats:
        cat = absent_cats[int(rng.integers(len(absent_cats)))]
        side = rng.choice(["on the left", "on the right"])
        out.append(("absent category + position", f"grab the {NOUNS[cat][0]} {side}"))
    return out


def main() -> None:
    """Print the share of each probe kind answered found on the scenes of ``--data-root``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--limit", type=int, default=120, help="scenes")
    args = p.parse_args()
    seg = Segmenter.from_checkpoint(args.checkpoint, device="cpu")
    rng = np.random.default_rng(7)
    found, total = defaultdict(int), defaultdict(int)
    examples = defaultdict(list)
    for path in sorted((args.data_root / "scenes").glob("*.json"))[:args.limit]:
        scene = json.loads(path.read_text())
        image = args.data_root / "images" / f"{path.stem}.png"
        rgb = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
        for kind, command in probes(scene, rng):
            pred = seg.predict(rgb, command)
            total[kind] += 1
            if pred.found:
                found[kind] += 1
                examples[kind].append(f"{path.stem}: {command!r}")
    for kind in sorted(total):
        print(f"{kind:30s} answered found {found[kind]:3d} of {total[kind]:3d} "
              f"({found[kind] / total[kind]:.1%})  e.g. {examples[kind][:3]}")


if __name__ == "__main__":
    main()
