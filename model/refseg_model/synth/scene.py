"""A tabletop scene: what is on the table, the rendered RGB-D picture, and its referring regions.

:func:`generate_scene` draws everything from one seed (same seed, same bytes).
:func:`make_demo_scene` builds the scene of the demo: two red cups, one on each side, among other
objects, so that "the red cup on the left" has exactly one referent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from refseg_model.synth import render
from refseg_model.synth.camera import Camera, sample_camera
from refseg_model.synth.expressions import describe_scene
from refseg_model.synth.objects import CATEGORIES, COLOURS, SIZES, ObjectSpec, sample_spec
from refseg_model.synth.render import Environment, PlacedObject, sample_environment

# 2: no-target expressions (region "absent"); 3: an absent colour alone, absent categories at a
# position
GENERATOR_VERSION = "3"
MIN_OBJECTS, MAX_OBJECTS = 3, 7
MIN_HEIGHT_PX, MAX_HEIGHT_PX = 40, 165
CLUSTER_PROB = 0.5  # object heights in the picture, at 480 rows


@dataclass
class SceneObject:
    """One object as seen in the picture (pixels) and in the room (metres, camera frame).

    ``lateral`` / ``distance`` are its footprint centre in the viewer's horizontal frame (to the
    right / away from the camera); ``u`` is the column of that centre in the picture;
    ``apparent_size`` the diagonal in pixels of its projected bounding box, hidden parts included.
    """

    object_id: int
    region_id: str
    category: str
    colour: str
    size: str
    bbox: tuple  # x, y, w, h of the visible pixels
    centroid: tuple  # x, y of the visible pixels
    center_3d: tuple  # camera optical frame, metres
    visible_fraction: float
    area: int
    lateral: float
    distance: float
    u: float
    radius: float
    apparent_size: float

    def to_json(self) -> dict:
        """Return a JSON-able dict (floats rounded)."""
        return {
            "object_id": self.object_id, "region_id": self.region_id,
            "category": self.category, "colour": self.colour, "size": self.size,
            "bbox": [int(v) for v in self.bbox],
            "centroid": [round(float(v), 2) for v in self.centroid],
            "center_3d": [round(float(v), 4) for v in self.center_3d],
            "visible_fraction": round(float(self.visible_fraction), 4),
            "area": int(self.area),
        }


@dataclass
class Region:
    """A referring region: the target of its expressions, with its exact ground-truth mask.

    ``strategies[k]`` is the generator strategy of ``expressions[k]`` (see
    :mod:`refseg_model.synth.expressions`; its kind is ``kind_of_strategy(strategies[k])``).
    """

    region_id: str
    expressions: list[str]
    mask: np.ndarray  # HxW bool: the visible pixels
    kind: str  # "object", "group", "stuff" or "absent" (no referent, empty mask)
    object_ids: tuple = ()
    strategies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class World:
    """What a scene was rendered from: camera, room, placed objects (to render other views)."""

    camera: Camera
    environment: Environment
    placed: tuple  # of render.PlacedObject, in object id order
    render_seed: tuple  # seeds the texture phase of every view (same table grain in each)


@dataclass
class Scene:
    """A rendered scene: RGB, depth in metres (0 = invalid), intrinsics, objects and regions."""

    rgb: np.ndarray
    depth_m: np.ndarray
    K: np.ndarray
    objects: list[SceneObject]
    regions: list[Region]
    labels: np.ndarray  # HxW uint8: render.TABLE, TABLE_FRONT, WALL, FLOOR, FIRST_OBJECT + i
    camera: dict = field(default_factory=dict)
    seed: tuple = ()
    world: World | None = None

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.rgb.shape[0])

    def region(self, region_id: str) -> Region:
        """Return the region called ``region_id``; raise ``KeyError`` naming the known ones."""
        for r in self.regions:
            if r.region_id == region_id:
                return r
        raise KeyError(f"no region {region_id!r}; regions: {[r.region_id for r in self.regions]}")

    def object_mask(self, object_id: int) -> np.ndarray:
        """Visible pixels of object ``object_id`` (1-based) as HxW bool."""
        return self.labels == render.FIRST_OBJECT + object_id - 1

    def to_json(self) -> dict:
        """Everything but the pixels, as a JSON-able dict (the writer's ``scenes/*.json``)."""
        return {
            "generator_version": GENERATOR_VERSION,
            "seed": [int(s) for s in self.seed],
            "width": self.width, "height": self.height,
            "K": [round(float(v), 6) for v in self.K.ravel()],
            "camera": self.camera,
            "objects": [o.to_json() for o in self.objects],
            "regions": [{"region_id": r.region_id, "kind": r.kind,
                         "object_ids": [int(i) for i in r.object_ids],
                         "area": int(r.mask.sum()), "expressions": list(r.expressions)}
                        for r in self.regions],
        }


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(list(seed) if isinstance(seed, (tuple, list)) else int(seed))


def _seed_tuple(seed) -> tuple:
    return tuple(int(s) for s in seed) if isinstance(seed, (tuple, list)) else (int(seed),)


def sample_specs(rng: np.random.Generator) -> list[ObjectSpec]:
    """Choose 3 to 7 objects; look-alikes are common so that position and relations matter."""
    n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    n_cats = int(rng.integers(2, min(n, 5) + 1))
    cats = list(rng.choice(CATEGORIES, size=n_cats, replace=False))
    chosen = cats + [cats[int(rng.integers(n_cats))] for _ in range(n - n_cats)]
    colours = list(COLOURS)
    specs = []
    for cat in chosen:
        earlier = [s for s in specs if s.category == cat]
        if earlier and rng.random() < 0.45:
            colour = earlier[int(rng.integers(len(earlier)))].colour
        else:
            colour = colours[int(rng.integers(len(colours)))]
        size = SIZES[int(rng.integers(2))]
        specs.append(sample_spec(rng, str(cat), colour, size))
    return specs


def _fits(cam: Camera, obj: PlacedObject) -> bool:
    uv = cam.project(obj.corners())
    if not np.all(np.isfinite(uv)):
        return False
    x0, y0 = uv.min(axis=0)
    x1, y1 = uv.max(axis=0)
    if x0 < 2 or y0 < 2 or x1 > cam.width - 2 or y1 > cam.height - 2:
        return False
    scale = cam.height / 480.0
    return MIN_HEIGHT_PX * scale <= y1 - y0 <= MAX_HEIGHT_PX * scale


def place(rng: np.random.Generator, cam: Camera, env: Environment, specs: list[ObjectSpec],
          columns: Sequence[tuple[float, float] | None] | None = None, tries: int = 60
          ) -> list[PlacedObject]:
    """Stand the objects on the table, inside the picture, not touching each other.

    ``columns[i]`` optionally limits object ``i`` to a range of image columns (fractions of the
    width). Objects that find no place are left out.
    """
    placed: list[PlacedObject] = []
    for i, spec in enumerate(specs):
        lo, hi = (columns[i] if columns is not None and columns[i] is not None else (0.06, 0.94))
        right, away = cam.viewer_axes()
        for attempt in range(tries):
            if placed and attempt < tries // 2 and rng.random() < CLUSTER_PROB:
                # just behind or beside an earlier object, so that one partly hides the other
                near = placed[int(rng.integers(len(placed)))]
                gap = near.spec.radius + spec.radius + rng.uniform(0.015, 0.05)
                angle = rng.uniform(-0.9, 0.9) + (0.0 if rng.random() < 0.7 else np.pi / 2)
                offset = gap * (np.cos(angle) * away + np.sin(angle) * right)
                x, y = near.x + offset[0], near.y + offset[1]
            else:
                u = rng.uniform(lo, hi) * cam.width
                v = rng.uniform(0.40, 0.97) * cam.height
                d = cam.R @ np.array([(u - cam.K[0, 2]) / cam.K[0, 0],
                                      (v - cam.K[1, 2]) / cam.K[1, 1], 1.0])
                if d[2] >= -1e-6:
                    continue
                t = -cam.C[2] / d[2]
                x, y = cam.C[0] + t * d[0], cam.C[1] + t * d[1]
            if columns is not None and columns[i] is not None:
                u_obj = cam.project(np.array([[x, y, 0.0]]))[0, 0] / cam.width
                if not lo <= u_obj <= hi:
                    continue
            if y < env.table_front_y + spec.radius + 0.01 or y > env.wall_y - spec.radius - 0.01:
                continue
            if any(np.hypot(x - p.x, y - p.y) < spec.radius + p.spec.radius + 0.012
                   for p in placed):
                continue
            obj = PlacedObject(spec, float(x), float(y), float(rng.uniform(0, 2 * np.pi)))
            if _fits(cam, obj):
                placed.append(obj)
                break
    return placed


def _measure(cam: Camera, placed: list[PlacedObject], labels: np.ndarray, full_area: np.ndarray
             ) -> list[SceneObject]:
    right, away = cam.viewer_axes()
    objects = []
    for i, obj in enumerate(placed):
        window = render.object_window(cam, obj)
        mask = labels[window] == render.FIRST_OBJECT + i if window else np.zeros((0, 0), bool)
        area = int(mask.sum())
        if area:
            ys, xs = np.nonzero(mask)
            ys, xs = ys + window[0].start, xs + window[1].start
            bbox = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                    int(ys.max() - ys.min() + 1))
            centroid = (float(xs.mean()), float(ys.mean()))
        else:
            bbox, centroid = (0, 0, 0, 0), (float("nan"), float("nan"))
        foot = np.array([obj.x, obj.y, 0.0]) - cam.C
        uv = cam.project(obj.corners())
        base_u = float(cam.project(np.array([[obj.x, obj.y, 0.0]]))[0, 0])
        objects.append(SceneObject(
            object_id=i + 1, region_id=f"o{i + 1}", category=obj.spec.category,
            colour=obj.spec.colour, size=obj.spec.size, bbox=bbox, centroid=centroid,
            center_3d=tuple(float(v) for v in cam.to_camera(obj.centre()[None])[0]),
            visible_fraction=area / max(int(full_area[i]), 1), area=area,
            lateral=float(foot @ right), distance=float(foot @ away), u=base_u,
            radius=obj.spec.radius,
            apparent_size=float(np.hypot(*(uv.max(axis=0) - uv.min(axis=0)))),
        ))
    return objects


def _compose(seed, rng: np.random.Generator, cam: Camera, env: Environment,
             placed: list[PlacedObject]) -> Scene:
    rgb, depth, labels, full_area = render.render(cam, env, placed, rng)
    objects = _measure(cam, placed, labels, full_area)
    size = float(labels.size)
    stuff = {
        "table": (float(np.isin(labels, (render.TABLE, render.TABLE_FRONT)).sum()) / size,
                  ("the wooden table",) if env.table_grain > 0.3 else ()),
        "wall": (float((labels == render.WALL).sum()) / size, ()),
        "floor": (float((labels == render.FLOOR).sum()) / size, ()),
    }
    texts = describe_scene(objects, stuff, rng, cam.width, cam.height)
    regions = []
    for t in texts:
        if t.kind == "absent":  # no referent: the empty mask
            mask = np.zeros(labels.shape, dtype=bool)
        elif t.kind == "stuff":
            codes = {"table": (render.TABLE, render.TABLE_FRONT), "wall": (render.WALL,),
                     "floor": (render.FLOOR,)}[t.region_id]
            mask = np.isin(labels, codes)
        else:
            mask = np.isin(labels, [render.FIRST_OBJECT + i - 1 for i in t.object_ids])
        regions.append(Region(t.region_id, t.expressions, mask, t.kind, tuple(t.object_ids),
                              t.strategies))
    camera = {
        "pitch_deg": round(cam.pitch_deg, 3), "yaw_deg": round(cam.yaw_deg, 3),
        "roll_deg": round(cam.roll_deg, 3), "height_m": round(float(cam.C[2]), 4),
        "R_world_from_camera": [round(float(v), 6) for v in cam.R.ravel()],
        "C_world": [round(float(v), 4) for v in cam.C],
        "table_front_y": round(env.table_front_y, 4), "wall_y": round(env.wall_y, 4),
        "light_dir": [round(v, 4) for v in env.light_dir],
    }
    world = World(cam, env, tuple(placed), (*_seed_tuple(seed), 104729))
    return Scene(rgb=rgb, depth_m=depth, K=cam.K.copy(), objects=objects, regions=regions,
                 labels=labels, camera=camera, seed=_seed_tuple(seed), world=world)


def generate_scene(seed: int | Sequence[int], width: int = 640, height: int = 480) -> Scene:
    """Draw and render one scene from ``seed`` (an int or a sequence of ints, e.g. (seed, i))."""
    if width < 32 or height < 24:
        raise ValueError(f"image size {width}x{height} is too small (at least 32x24)")
    rng = _rng(seed)
    for _ in range(20):
        cam = sample_camera(rng, width, height)
        env = sample_environment(rng)
        placed = place(rng, cam, env, sample_specs(rng))
        if len(placed) >= MIN_OBJECTS:
            break
    return _compose(seed, rng, cam, env, placed)


DEMO_COMMAND = "pick up the red cup on the left"
DEMO_EXPRESSION = "the red cup on the left"
DEMO_STRATEGY = "position"


def make_demo_scene(seed: int = 0, width: int = 640, height: int = 480
                    ) -> tuple[Scene, str, Region]:
    """Build a scene where "the red cup on the left" has exactly one referent.

    Two red cups stand apart, one in the left part of the picture and one in the right part,
    with 2 to 4 other objects that are not red cups. Returns ``(scene, command, region)`` with the
    command "pick up the red cup on the left" and the ground-truth region of the left red cup.
    """
    rng = _rng([7919, int(seed)])
    others = [c for c in CATEGORIES if c != "cup"]
    for _ in range(50):
        cam = sample_camera(rng, width, height)
        env = sample_environment(rng)
        specs = [sample_spec(rng, "cup", "red", "large"), sample_spec(rng, "cup", "red", "large")]
        columns: list = [(0.12, 0.32), (0.68, 0.88)]
        for _ in range(int(rng.integers(2, 5))):
            colour = [c for c in COLOURS if c != "red"][int(rng.integers(len(COLOURS) - 1))]
            specs.append(sample_spec(rng, str(rng.choice(others)), colour,
                                     SIZES[int(rng.integers(2))]))
            columns.append(None)
        placed = place(rng, cam, env, specs, columns)
        if len(placed) < 4 or [p.spec.category for p in placed[:2]] != ["cup", "cup"]:
            continue
        scene = _compose([7919, int(seed)], rng, cam, env, placed)
        left, right = scene.objects[0], scene.objects[1]
        if left.visible_fraction < 0.9 or right.visible_fraction < 0.6:
            continue
        region = Region("o1", [DEMO_EXPRESSION], scene.object_mask(1), "object", (1,),
                        [DEMO_STRATEGY])
        for r in scene.regions:
            if r.region_id == "o1":
                if DEMO_EXPRESSION not in r.expressions:
                    r.expressions.insert(0, DEMO_EXPRESSION)
                    r.strategies.insert(0, DEMO_STRATEGY)
                region = r
                break
        else:
            scene.regions.insert(0, region)
        return scene, DEMO_COMMAND, region
    raise RuntimeError(f"could not build a demo scene for seed {seed} at {width}x{height}")
