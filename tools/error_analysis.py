"""Which object does the model pick when it is wrong? Per-kind confusion tables and a contact sheet.

    python tools/error_analysis.py --checkpoint model/refseg_model/weights/tabletop.pt \
        --seed 4242 --images 150 --out runs/errors/shipped

Scenes are drawn fresh from ``(seed, i)`` at 640x480 (the same world as ``refseg-synth``), so every
object's own mask is at hand (``Scene.labels``). Each expression of every object region is
predicted; a prediction with IoU < 0.5 against its target is a failure, classified by the object
that holds most of the predicted pixels:

- ``nothing``: the prediction is empty; ``partial target``: the target holds most of it;
- ``landmark``: the landmark a relation names ("the bowl" of "the cup next to the bowl");
- ``same category``: another object of the target's category (the mirror position, the other size);
- ``other object``; ``background``: table, wall or floor hold most of it.

No-target expressions (region ``absent``) are scored by whether anything was found. Writes
``errors.json`` (counts per kind and outcome), ``errors.md`` (the tables) and ``failures.png``
(a contact sheet: target outlined green, prediction tinted red, expression and outcome below).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from refseg_model import Segmenter
from refseg_model.drawing import draw_mask
from refseg_model.fileio import atomic_write, write_png
from refseg_model.metrics import mask_iou
from refseg_model.synth import generate_scene
from refseg_model.synth.expressions import kind_of_strategy
from refseg_model.synth.objects import NOUNS
from refseg_model.synth.render import FIRST_OBJECT

OUTCOMES = ("right", "partial target", "landmark", "same category", "other object",
            "background", "nothing")
RELATION_WORDS = ("next to", "beside", "near", "left of", "right of", "in front of", "behind")
NOUN_TO_CATEGORY = {n: c for c, names in NOUNS.items() for n in names}


def landmark_ids(expression: str, objects: list, target_category: str) -> set[int]:
    """Return the ids of the objects that the relation's landmark words can name."""
    for word in RELATION_WORDS:
        if f" {word} " in f" {expression} ":
            tail = expression.split(f"{word} ", 1)[1].replace("the ", "").split()
            break
    else:
        return set()
    category = NOUN_TO_CATEGORY.get(tail[-1]) if tail else None
    colour = tail[0] if len(tail) == 2 else None
    return {o.object_id for o in objects if o.category == category and
            o.category != target_category and (colour is None or o.colour == colour)}


def classify(pred: np.ndarray, target_ids: tuple, scene, expression: str, strategy: str) -> str:
    """Name what a failed prediction covers (see the module docstring)."""
    if not pred.any():
        return "nothing"
    labels = scene.labels[pred]
    ids, counts = np.unique(labels, return_counts=True)
    best = int(ids[np.argmax(counts)])
    if best < FIRST_OBJECT:
        return "background"
    object_id = best - FIRST_OBJECT + 1
    if object_id in target_ids:
        return "partial target"
    by_id = {o.object_id: o for o in scene.objects}
    target = by_id[target_ids[0]]
    if strategy == "relation" and object_id in landmark_ids(expression, scene.objects,
                                                            target.category):
        return "landmark"
    if by_id[object_id].category == target.category:
        return "same category"
    return "other object"


def tile(scene, target: np.ndarray, pred: np.ndarray, text: str, size=(320, 240)) -> np.ndarray:
    """One contact-sheet tile (BGR): target outlined green, prediction tinted red, text below."""
    bgr = scene.rgb[..., ::-1].copy()
    draw_mask(bgr, pred, tint=(0, 0, 255), outline=(0, 0, 255), alpha=0.45, thickness=2)
    draw_mask(bgr, target, tint=None, outline=(0, 220, 0), alpha=0.0, thickness=3)
    small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    banner = np.full((40, size[0], 3), 255, np.uint8)
    lines = [text[:52], text[52:104]] if len(text) > 52 else [text]
    for k, line in enumerate(lines):
        cv2.putText(banner, line, (4, 15 + 17 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([small, banner], axis=0)


def analyse(segmenter: Segmenter, seed: int, images: int, width: int = 640, height: int = 480,
            max_tiles: int = 24) -> tuple[dict, list[np.ndarray]]:
    """Predict every expression of ``images`` fresh scenes; return counts and failure tiles."""
    counts: dict[str, Counter] = defaultdict(Counter)
    tiles: list[np.ndarray] = []
    wanted = Counter()
    for i in range(images):
        scene = generate_scene((seed, i), width, height)
        for region in scene.regions:
            if region.kind == "stuff":
                continue
            for expression, strategy in zip(region.expressions, region.strategies):
                kind = kind_of_strategy(strategy)
                pred = segmenter.predict(scene.rgb, expression).mask
                if region.kind == "absent":
                    counts[kind]["found" if pred.any() else "right"] += 1
                    continue
                if mask_iou(pred, region.mask) >= 0.5:
                    counts[kind]["right"] += 1
                    continue
                outcome = ("other object" if region.kind == "group" and pred.any()
                           else classify(pred, region.object_ids, scene, expression, kind))
                counts[kind][outcome] += 1
                if kind in ("relation", "size", "position") and wanted[kind] < max_tiles // 3:
                    wanted[kind] += 1
                    tiles.append(tile(scene, region.mask, pred, f"{kind}: \"{expression}\" -> "
                                                                 f"{outcome}"))
        print(f"\rscene {i + 1}/{images}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {k: dict(v) for k, v in sorted(counts.items())}, tiles


def markdown(counts: dict) -> str:
    """Return the confusion table: per kind, the share of each outcome (in %)."""
    present = [k for k in counts if not k.startswith("absent")]
    head = "| kind | samples | " + " | ".join(OUTCOMES) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(OUTCOMES)]
    for kind in present:
        n = sum(counts[kind].values())
        cells = [f"{100 * counts[kind].get(o, 0) / n:.1f}" for o in OUTCOMES]
        lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    absent = [k for k in counts if k.startswith("absent")]
    if absent:
        lines += ["", "| no-target kind | samples | answered found (%) |", "|---|---:|---:|"]
        for kind in absent:
            n = sum(counts[kind].values())
            lines.append(f"| {kind} | {n} | {100 * counts[kind].get('found', 0) / n:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the analysis and write its files; return the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--seed", type=int, default=4242, help="scene seed (never used in training)")
    p.add_argument("--images", type=int, default=150)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    segmenter = Segmenter.from_checkpoint(args.checkpoint, compile="off")
    counts, tiles = analyse(segmenter, args.seed, args.images)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "errors.json", json.dumps(counts, indent=1) + "\n")
    atomic_write(args.out / "errors.md", markdown(counts))
    if tiles:
        columns = 4
        tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
        rows = [np.concatenate(tiles[r:r + columns], axis=1)
                for r in range(0, len(tiles), columns)]
        write_png(args.out / "failures.png", np.concatenate(rows, axis=0))
    print(markdown(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
