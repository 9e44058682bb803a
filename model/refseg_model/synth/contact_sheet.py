"""Draw a contact sheet of synthetic scenes: each with one expression and its mask outlined.

Run ``python -m refseg_model.synth.contact_sheet --out docs/img/synth_examples.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from refseg_model.drawing import draw_mask
from refseg_model.fileio import write_png
from refseg_model.synth.scene import Scene, generate_scene

KIND_ORDER = ("object", "object", "group", "object", "stuff", "object", "group", "object")


def pick_region(scene: Scene, kind: str, rng: np.random.Generator):
    """Choose a region of ``kind`` (or any region) and one of its expressions."""
    regions = [r for r in scene.regions if r.kind == kind] or scene.regions
    # prefer the expressions that say more than a bare name
    region = regions[int(rng.integers(len(regions)))]
    texts = sorted(region.expressions, key=len, reverse=True)
    return region, texts[0]


def draw_tile(scene: Scene, region, text: str, size: tuple[int, int]) -> np.ndarray:
    """Return one tile (BGR): the scene, the mask tinted and outlined, the expression below."""
    bgr = scene.rgb[..., ::-1].copy()
    # objects keep their colour: only big (stuff) regions are tinted
    draw_mask(bgr, region.mask, tint=(255, 0, 255) if region.kind == "stuff" else None,
              outline=(255, 0, 255), alpha=0.4, thickness=max(2, scene.width // 160))
    tile = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    banner = np.full((28, size[0], 3), 255, np.uint8)
    cv2.putText(banner, f'"{text}"', (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([tile, banner], axis=0)


def contact_sheet(seeds: list[int], columns: int = 4, tile: tuple[int, int] = (320, 240),
                  width: int = 640, height: int = 480) -> np.ndarray:
    """Return a BGR grid of tiles, one per seed."""
    rng = np.random.default_rng(0)
    tiles = []
    for i, seed in enumerate(seeds):
        scene = generate_scene(seed, width, height)
        region, text = pick_region(scene, KIND_ORDER[i % len(KIND_ORDER)], rng)
        tiles.append(draw_tile(scene, region, text, tile))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    """Write the contact sheet PNG."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(8)), help="scene seeds")
    p.add_argument("--columns", type=int, default=4)
    args = p.parse_args(argv)
    sheet = contact_sheet(args.seeds, args.columns)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_png(out, sheet)
    except OSError as exc:
        print(f"contact_sheet: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
