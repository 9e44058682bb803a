"""Write a synthetic dataset in the layout of ``docs/ARCHITECTURE.md`` (mirrors ReferIt's).

::

    DIR/meta.json                          generator version, seed, counts, image size
    DIR/images/<image_id>.png              RGB
    DIR/depth/<image_id>.png               uint16 depth in millimetres (0 = no depth)
    DIR/camera/<image_id>.json             {"width", "height", "K": [fx,0,cx,0,fy,cy,0,0,1]}
    DIR/masks/<image_id>_<region_id>.png   mono8, 255 = region
    DIR/scenes/<image_id>.json             objects, categories, colours, boxes, regions
    DIR/synthetic_query_<split>.json       {"<image_id>_<region_id>": ["expression", ...]}
    DIR/synthetic_kinds_<split>.json       {"<image_id>_<region_id>": [{"kind", "strategy"}, ...]}
    DIR/synthetic_<split>_imlist.txt       image ids, one a line; splits train, val, test

``synthetic_kinds_<split>.json`` runs parallel to the query file: entry ``k`` of a region's list
says what expression ``k`` asks for (its kind, one of
:data:`~refseg_model.synth.expressions.EXPRESSION_KINDS`, and the generator strategy behind it).
Datasets written before it existed have every other file byte for byte as they are now.

Image ``i`` is drawn from the seed ``(seed, i)``, so the bytes do not depend on the number of
worker processes. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from refseg_model.fileio import atomic_write, encode_png
from refseg_model.synth.expressions import kind_of_strategy
from refseg_model.synth.scene import GENERATOR_VERSION, Scene, generate_scene

SPLITS = ("train", "val", "test")
SUBDIRS = ("images", "depth", "camera", "masks", "scenes")


def _png(image: np.ndarray) -> bytes:
    return encode_png(image, compression=1)


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=1) + "\n").encode()


def depth_to_png16(depth_m: np.ndarray) -> np.ndarray:
    """Metres (0 = invalid) to uint16 millimetres, clipped to 65.535 m."""
    mm = np.rint(np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def camera_json(scene: Scene) -> dict:
    """Return the ``camera/<image_id>.json`` content of a scene."""
    return {"width": scene.width, "height": scene.height,
            "K": [round(float(v), 6) for v in scene.K.ravel()]}


def write_scene(root: Path, image_id: str, scene: Scene) -> dict[str, list[str]]:
    """Write one scene's files; return its ``{"<image_id>_<region_id>": expressions}``."""
    atomic_write(root / "images" / f"{image_id}.png", _png(scene.rgb[..., ::-1]))
    atomic_write(root / "depth" / f"{image_id}.png", _png(depth_to_png16(scene.depth_m)))
    atomic_write(root / "camera" / f"{image_id}.json", _json(camera_json(scene)))
    queries = {}
    for region in scene.regions:
        key = f"{image_id}_{region.region_id}"
        atomic_write(root / "masks" / f"{key}.png", _png(region.mask.astype(np.uint8) * 255))
        queries[key] = list(region.expressions)
    description = scene.to_json()
    description["image_id"] = image_id
    atomic_write(root / "scenes" / f"{image_id}.json", _json(description))
    return queries


def expression_kinds(image_id: str, scene: Scene) -> dict[str, list[dict]]:
    """Return a scene's ``{"<image_id>_<region_id>": [{"kind", "strategy"}, ...]}``."""
    out = {}
    for region in scene.regions:
        if len(region.strategies) != len(region.expressions):
            raise ValueError(f"region {region.region_id} has {len(region.expressions)} "
                             f"expressions but {len(region.strategies)} strategies")
        out[f"{image_id}_{region.region_id}"] = [
            {"kind": kind_of_strategy(s), "strategy": s} for s in region.strategies]
    return out


def _work(args: tuple) -> tuple[int, dict, dict, dict]:
    root, seed, index, image_id, width, height, write = args
    scene = generate_scene((seed, index), width, height)
    if write:
        queries = write_scene(Path(root), image_id, scene)
    else:
        queries = {f"{image_id}_{r.region_id}": list(r.expressions) for r in scene.regions}
    kinds = expression_kinds(image_id, scene)
    stats = {
        "objects": Counter(o.category for o in scene.objects),
        "colours": Counter(o.colour for o in scene.objects),
        "kinds": Counter(r.kind for r in scene.regions),
        "expressions": sum(len(r.expressions) for r in scene.regions),
    }
    return index, queries, kinds, stats


def split_of_images(num_images: int, seed: int, val_frac: float, test_frac: float) -> list[str]:
    """Assign each image index to a split, reproducibly from ``seed``."""
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"val_frac={val_frac} and test_frac={test_frac} must be in [0, 1) and "
                         "sum to less than 1")
    order = np.random.default_rng([int(seed), 424242]).permutation(num_images)
    n_test = int(round(num_images * test_frac))
    n_val = int(round(num_images * val_frac))
    splits = ["train"] * num_images
    for i in order[:n_test]:
        splits[i] = "test"
    for i in order[n_test:n_test + n_val]:
        splits[i] = "val"
    return splits


def image_sizes(num_images: int, seed: int, size: tuple[int, int],
                wide: tuple[int, int] | None = None, wide_frac: float = 0.0
                ) -> list[tuple[int, int]]:
    """Return each image's (width, height): ``wide`` for a ``wide_frac`` share, else ``size``.

    Which images are wide depends only on ``(seed, index)``: a dataset mixing a 4:3 camera and a
    16:9 one (``--wide 368x208 --wide-frac 0.3``) keeps its bytes whatever the worker count.
    """
    if not 0.0 <= wide_frac <= 1.0:
        raise ValueError(f"wide_frac must be in [0, 1], got {wide_frac}")
    if wide is None or wide_frac == 0.0:
        return [tuple(size)] * num_images
    draws = [np.random.default_rng([int(seed), i, 169]).random() for i in range(num_images)]
    return [tuple(wide) if u < wide_frac else tuple(size) for u in draws]


def _draw_all(root: Path, num_images: int, seed: int, width: int, height: int, val_frac: float,
              test_frac: float, workers: int, progress: bool, write: bool,
              wide: tuple[int, int] | None = None, wide_frac: float = 0.0) -> tuple:
    """Draw every scene (writing its files when ``write``); gather queries, kinds and counts."""
    splits = split_of_images(num_images, seed, val_frac, test_frac)
    digits = max(6, len(str(num_images - 1)))
    ids = [f"{i:0{digits}d}" for i in range(num_images)]
    sizes = image_sizes(num_images, seed, (width, height), wide, wide_frac)
    jobs = [(str(root), int(seed), i, ids[i], int(sizes[i][0]), int(sizes[i][1]), write)
            for i in range(num_images)]
    queries: dict[str, dict] = {s: {} for s in SPLITS}
    kinds: dict[str, dict] = {s: {} for s in SPLITS}
    per_image: list[tuple | None] = [None] * num_images
    totals = {"objects": Counter(), "colours": Counter(), "kinds": Counter()}
    expressions = Counter()

    def collect(results) -> None:
        for index, q, k, stats in results:
            per_image[index] = q, k
            for key in totals:
                totals[key].update(stats[key])
            expressions[splits[index]] += stats["expressions"]
            bar.update(1)

    with tqdm(total=num_images, desc="refseg-synth", unit="img", disable=not progress) as bar:
        if workers == 1:
            collect(map(_work, jobs))
        else:
            with get_context("spawn").Pool(min(workers, num_images)) as pool:
                collect(pool.imap_unordered(_work, jobs, chunksize=4))
    for i, (q, k) in enumerate(per_image):
        queries[splits[i]].update(q)
        kinds[splits[i]].update(k)
    return splits, ids, queries, kinds, totals, expressions


def write_dataset(out: str | os.PathLike, num_images: int, seed: int = 0, width: int = 640,
                  height: int = 480, workers: int = 1, val_frac: float = 0.1,
                  test_frac: float = 0.1, progress: bool = True,
                  wide: tuple[int, int] | None = None, wide_frac: float = 0.0) -> dict:
    """Generate ``num_images`` scenes into ``out``; return the content of ``meta.json``.

    ``wide`` (width, height) with ``wide_frac`` > 0 draws that share of the scenes with a second
    camera (a 16:9 one beside the 4:3 ``width x height``), see :func:`image_sizes`.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"output path {root} exists and is not a folder")
    for sub in SUBDIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    splits, ids, queries, kinds, totals, expressions = _draw_all(
        root, num_images, seed, width, height, val_frac, test_frac, workers, progress, write=True,
        wide=wide, wide_frac=wide_frac)
    counts = {}
    for split in SPLITS:
        image_ids = [ids[i] for i in range(num_images) if splits[i] == split]
        atomic_write(root / f"synthetic_{split}_imlist.txt",
                     "".join(f"{x}\n" for x in image_ids).encode())
        atomic_write(root / f"synthetic_query_{split}.json",
                     (json.dumps(queries[split]) + "\n").encode())
        atomic_write(root / f"synthetic_kinds_{split}.json",
                     (json.dumps(kinds[split]) + "\n").encode())
        counts[split] = {"images": len(image_ids), "regions": len(queries[split]),
                         "expressions": expressions[split]}
    meta = {
        "generator": "refseg-synth", "generator_version": GENERATOR_VERSION,
        "seed": int(seed), "num_images": num_images, "width": int(width), "height": int(height),
        "val_frac": val_frac, "test_frac": test_frac, "splits": counts,
        **({"wide": [int(v) for v in wide], "wide_frac": float(wide_frac)}
           if wide is not None and wide_frac > 0 else {}),
        "objects_by_category": dict(sorted(totals["objects"].items())),
        "objects_by_colour": dict(sorted(totals["colours"].items())),
        "regions_by_kind": dict(sorted(totals["kinds"].items())),
    }
    atomic_write(root / "meta.json", _json(meta))
    return meta


def add_expression_kinds(out: str | os.PathLike, workers: int = 1, progress: bool = True
                         ) -> dict[str, int]:
    """Write the ``synthetic_kinds_<split>.json`` files of a dataset written without them.

    The scenes are drawn again from ``meta.json`` (seed, size, split fractions) and nothing but
    the kinds files is written. Raises ``ValueError`` when the dataset's expressions are not
    what this generator draws (another generator version, or edited files). Returns the number
    of expressions given a kind, per split.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    root = Path(out)
    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
        version, seed = meta["generator_version"], int(meta["seed"])
        num_images, width, height = (int(meta[k]) for k in ("num_images", "width", "height"))
        val_frac, test_frac = float(meta["val_frac"]), float(meta["test_frac"])
        wide = tuple(int(v) for v in meta["wide"]) if "wide" in meta else None
        wide_frac = float(meta.get("wide_frac", 0.0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{root / 'meta.json'}: not the meta file of a refseg-synth dataset "
                         f"({exc})") from exc
    if version != GENERATOR_VERSION:
        raise ValueError(f"{root} was written by generator version {version}, this is "
                         f"{GENERATOR_VERSION}: its scenes cannot be drawn again")
    _, _, queries, kinds, _, _ = _draw_all(root, num_images, seed, width, height, val_frac,
                                           test_frac, workers, progress, write=False,
                                           wide=wide, wide_frac=wide_frac)
    for split in SPLITS:
        path = root / f"synthetic_query_{split}.json"
        try:
            written = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        if written != queries[split]:
            raise ValueError(f"{path} differs from what generator version {GENERATOR_VERSION} "
                             f"draws from seed {seed}: kinds cannot be added")
    for split in SPLITS:
        atomic_write(root / f"synthetic_kinds_{split}.json", json.dumps(kinds[split]) + "\n")
    return {split: sum(len(v) for v in kinds[split].values()) for split in SPLITS}
