"""The catalogue of the tabletop world: object categories, colours, sizes and their words.

Dimensions are in metres. Each category has a base size range; an instance is ``small`` (scaled
by :data:`SIZE_SCALE` ``["small"]``) or ``large``, so that within a category a small and a large
instance differ by about 1.5x and "the small cup" is visibly meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORIES = ("cup", "jar", "bottle", "box", "ball", "bowl", "book", "can")

# Names a speaker uses for each category (the first is the usual one), singular and plural.
NOUNS = {
    "cup": ("cup", "mug"),
    "jar": ("jar",),
    "bottle": ("bottle",),
    "box": ("box",),
    "ball": ("ball",),
    "bowl": ("bowl",),
    "book": ("book",),
    "can": ("can", "tin"),
}
PLURALS = {
    "cup": "cups", "mug": "mugs", "jar": "jars", "bottle": "bottles", "box": "boxes",
    "ball": "balls", "bowl": "bowls", "book": "books", "can": "cans", "tin": "tins",
}

# Base albedo of each colour name (linear-ish RGB in 0..1), chosen to stay apart under shading.
COLOURS = {
    "red": (0.80, 0.09, 0.08),
    "green": (0.13, 0.60, 0.18),
    "blue": (0.10, 0.24, 0.82),
    "yellow": (0.96, 0.84, 0.10),
    "orange": (0.98, 0.47, 0.05),
    "purple": (0.50, 0.16, 0.66),
    "white": (0.93, 0.93, 0.91),
    "black": (0.09, 0.09, 0.10),
}

SIZES = ("small", "large")
SIZE_SCALE = {"small": 0.82, "large": 1.22}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
COMPARATIVES = {"small": "smaller", "large": "bigger"}


@dataclass(frozen=True)
class ObjectSpec:
    """What an object is, before it is placed: category, colour name, size class and dimensions.

    ``dims`` holds the category's shape parameters in metres (see :func:`sample_dims`);
    ``radius`` is the radius of its footprint on the table (for spacing and "next to").
    ``height`` is how far it rises above the table.
    """

    category: str
    colour: str
    size: str
    dims: dict
    radius: float
    height: float
    detail: tuple  # colours of secondary parts (lid, cap, label...) as RGB tuples


def sample_dims(rng: np.random.Generator, category: str, size: str) -> tuple[dict, float, float]:
    """Draw the shape parameters of one instance; return ``(dims, footprint radius, height)``."""
    s = SIZE_SCALE[size] * rng.uniform(0.95, 1.05)
    u = rng.uniform
    if category == "cup":
        r, h = u(0.036, 0.042) * s, u(0.085, 0.10) * s
        return {"r_top": r, "r_bottom": 0.84 * r, "h": h}, r + 0.03 * s, h
    if category == "jar":
        r, h = u(0.045, 0.052) * s, u(0.085, 0.10) * s  # squat, with a thick lid
        return {"r": r, "h": h, "lid_h": 0.22 * h}, 1.03 * r, h
    if category == "bottle":
        r, h = u(0.030, 0.036) * s, u(0.17, 0.20) * s
        return {"r": r, "h": h, "neck_r": 0.38 * r}, r, h
    if category == "box":
        sx, sy, sz = u(0.07, 0.12) * s, u(0.05, 0.085) * s, u(0.06, 0.11) * s
        return {"sx": sx, "sy": sy, "sz": sz}, 0.5 * float(np.hypot(sx, sy)), sz
    if category == "ball":
        r = u(0.032, 0.045) * s
        return {"r": r}, r, 2 * r
    if category == "bowl":
        rr = u(0.065, 0.082) * s
        return {"rim_r": rr, "h": 0.55 * rr}, rr, 0.55 * rr
    if category == "book":
        sx, sy, sz = u(0.14, 0.17) * s, u(0.19, 0.23) * s, u(0.022, 0.035) * s
        return {"sx": sx, "sy": sy, "sz": sz}, 0.5 * float(np.hypot(sx, sy)), sz
    if category == "can":
        r, h = u(0.029, 0.033) * s, u(0.11, 0.125) * s  # slim and tall
        return {"r": r, "h": h}, r, h
    raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")


def jitter_colour(rng: np.random.Generator, colour: str) -> np.ndarray:
    """Return the albedo of ``colour`` with a small per-instance variation."""
    base = np.asarray(COLOURS[colour], dtype=np.float64)
    return np.clip(base * rng.uniform(0.92, 1.06) + rng.uniform(-0.025, 0.025, 3), 0.0, 1.0)


def sample_spec(rng: np.random.Generator, category: str, colour: str, size: str) -> ObjectSpec:
    """Draw a full :class:`ObjectSpec` for the given category, colour name and size class."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; expected one of {tuple(COLOURS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    dims, radius, height = sample_dims(rng, category, size)
    body = jitter_colour(rng, colour)
    metals = ((0.72, 0.72, 0.74), (0.80, 0.66, 0.30), (0.30, 0.30, 0.32))
    labels = ((0.95, 0.94, 0.88), (0.92, 0.90, 0.80), (0.15, 0.15, 0.16))
    detail = (tuple(body), metals[int(rng.integers(len(metals)))],
              labels[int(rng.integers(len(labels)))])
    return ObjectSpec(category, colour, size, dims, float(radius), float(height), detail)
