"""Ray-cast renderer of the tabletop: planes, objects, Lambert + Phong shading, soft shadows.

Every pixel's ray is intersected with the table top (z = 0), the table's front face, the floor
and the wall (a z-buffer keeps the nearest), then each object is traced inside its projected
bounding box. Depth is the camera z of the visible surface, so it is exactly consistent with the
intrinsics ``K``. Labels: :data:`TABLE` (the top), :data:`TABLE_FRONT` (its front face),
:data:`WALL`, :data:`FLOOR`, objects ``FIRST_OBJECT + i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from refseg_model.synth import solids
from refseg_model.synth.camera import Camera
from refseg_model.synth.objects import ObjectSpec

TABLE, WALL, FLOOR, TABLE_FRONT = 1, 2, 3, 4
FIRST_OBJECT = 10
TABLE_THICKNESS = 0.035
FLOOR_Z = -0.74


@dataclass(frozen=True)
class Environment:
    """The room: table and wall geometry and colours, and the light."""

    table_front_y: float
    wall_y: float
    table_colour: tuple
    table_grain: float  # 0 = plain laminate, 1 = strong wood grain
    wall_colour: tuple
    floor_colour: tuple
    light_dir: tuple  # unit vector towards the light (world frame)
    light: float  # direct light intensity
    ambient: float
    tint: tuple  # colour of the light


@dataclass(frozen=True)
class PlacedObject:
    """An :class:`ObjectSpec` standing on the table at ``(x, y)`` turned by ``yaw`` radians."""

    spec: ObjectSpec
    x: float
    y: float
    yaw: float

    def rotation(self) -> np.ndarray:
        """Object-to-world rotation (about the vertical axis)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def to_world(self, local: np.ndarray) -> np.ndarray:
        """Map Nx3 points of the object's frame to the world frame."""
        return local @ self.rotation().T + np.array([self.x, self.y, 0.0])

    def corners(self) -> np.ndarray:
        """Return the 8 corners of its bounding box in the world frame."""
        lo, hi = solids.bounds(self.spec)
        grid = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
        return self.to_world(grid)

    def centre(self) -> np.ndarray:
        """Centre of its volume in the world frame."""
        return np.array([self.x, self.y, 0.5 * self.spec.height])


def sample_environment(rng: np.random.Generator) -> Environment:
    """Draw the table, wall, floor and light of one scene."""
    woods = ((0.66, 0.48, 0.30), (0.52, 0.36, 0.22), (0.74, 0.60, 0.42), (0.60, 0.42, 0.28),
             (0.56, 0.55, 0.53), (0.46, 0.47, 0.50))
    walls = ((0.86, 0.84, 0.78), (0.80, 0.84, 0.86), (0.84, 0.86, 0.80), (0.90, 0.88, 0.86),
             (0.76, 0.76, 0.78))
    floors = ((0.36, 0.30, 0.26), (0.42, 0.42, 0.44), (0.30, 0.28, 0.30))
    k = int(rng.integers(len(woods)))
    jitter = lambda c, s: tuple(np.clip(np.asarray(c) * rng.uniform(1 - s, 1 + s), 0, 1))  # noqa: E731
    azimuth = rng.uniform(0.0, 2 * np.pi)
    elevation = np.radians(rng.uniform(35.0, 75.0))
    light_dir = (np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                 np.sin(elevation))
    warm = rng.uniform(-0.05, 0.05)
    return Environment(
        table_front_y=float(rng.uniform(0.12, 0.42)),
        wall_y=float(rng.uniform(1.05, 1.45)),
        table_colour=jitter(woods[k], 0.08),
        table_grain=float(rng.uniform(0.3, 1.0) if k < 4 else rng.uniform(0.0, 0.2)),
        wall_colour=jitter(walls[int(rng.integers(len(walls)))], 0.05),
        floor_colour=jitter(floors[int(rng.integers(len(floors)))], 0.1),
        light_dir=tuple(float(v) for v in light_dir),
        light=float(rng.uniform(0.55, 0.8)),
        ambient=float(rng.uniform(0.40, 0.52)),
        tint=(1.0 + warm, 1.0, 1.0 - warm),
    )


def _plane_hits(cam: Camera, rays: np.ndarray, env: Environment):
    """Depth and plane index (0 table top, 1 its front face, 2 floor, 3 wall) of every pixel."""
    C = cam.C.astype(np.float32)
    dy, dz = rays[..., 1], rays[..., 2]
    inf = np.float32(np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_table = np.where(dz < 0, -C[2] / dz, inf)
        y_table = C[1] + t_table * dy
        t_table[(y_table < env.table_front_y) | (y_table > env.wall_y)] = inf
        t_face = np.where(dy > 0, (env.table_front_y - C[1]) / dy, inf)
        z_face = C[2] + t_face * dz
        t_face[(z_face > 0) | (z_face < -TABLE_THICKNESS)] = inf
        t_floor = np.where(dz < 0, (FLOOR_Z - C[2]) / dz, inf)
        t_floor[C[1] + t_floor * dy > env.wall_y] = inf
        t_wall = np.where(dy > 0, (env.wall_y - C[1]) / dy, inf)
    stack = np.stack([t_table, t_face, t_floor, t_wall])
    which = np.argmin(stack, axis=0)
    depth = np.take_along_axis(stack, which[None], axis=0)[0]
    return depth, which


def _wood(px: np.ndarray, py: np.ndarray, env: Environment, phase: float) -> np.ndarray:
    """Multiplicative wood-grain pattern in table coordinates (metres)."""
    warp = np.sin(py * np.float32(3.1) + np.float32(phase)) * np.float32(0.015)
    grain = np.sin((px + warp) * np.float32(260.0) + np.float32(phase))
    planks = np.mod(px + np.float32(phase), np.float32(0.18)) < 0.0025
    g = np.float32(env.table_grain)
    return np.float32(1.0) + g * (np.float32(0.06) * grain - np.float32(0.25) * planks)


def render_room(cam: Camera, rays: np.ndarray, env: Environment, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shade the planes: return ``(rgb float32 HxWx3 in 0..1, depth HxW, label HxW uint8)``."""
    depth, which = _plane_hits(cam, rays, env)
    finite = np.where(np.isfinite(depth), depth, np.float32(0.0))
    P = cam.C.astype(np.float32) + finite[..., None] * rays
    px, py, pz = P[..., 0], P[..., 1], P[..., 2]
    L = np.asarray(env.light_dir)
    phase = float(rng.uniform(0, 100))
    f32 = np.float32
    # one brightness factor per plane, computed over the whole frame, then picked per pixel
    lit_up = env.ambient + env.light * max(L[2], 0.0)
    lit_front = env.ambient + env.light * max(-L[1], 0.0)
    back = np.clip((py - env.table_front_y) / f32(env.wall_y), 0, 1)
    top = _wood(px, py, env, phase) * (f32(lit_up) - f32(0.18 * lit_up) * back)
    face = np.full_like(px, f32(0.72 * lit_front))
    grout = (np.mod(px, f32(0.4)) < 0.006) | (np.mod(py, f32(0.4)) < 0.006)
    floor = f32(lit_up) * (f32(1.0) - f32(0.25) * grout) * \
        np.where(py > env.table_front_y, f32(0.35), f32(1.0))
    wall_light = env.ambient + 0.1 + 0.6 * env.light * max(-L[1], 0.3)
    wall = f32(wall_light) * (f32(1.0) - f32(0.10) * np.clip(pz, 0, 1) +
                              f32(0.03) * np.sin(px * f32(9.0) + f32(phase)))
    factor = np.choose(which, [top, face, floor, wall])
    base = np.array([env.table_colour, env.table_colour, env.floor_colour, env.wall_colour],
                    dtype=np.float32) * np.asarray(env.tint, dtype=np.float32)
    rgb = base[which] * factor[..., None]
    label = np.array([TABLE, TABLE_FRONT, FLOOR, WALL], dtype=np.uint8)[which]
    return rgb, depth, label


def shadow_map(cam: Camera, objects: list[PlacedObject], env: Environment) -> np.ndarray:
    """Soft shadows the objects cast on the table top: HxW factor in (0, 1], 1 = lit."""
    L = np.asarray(env.light_dir)
    mask = np.zeros((cam.height, cam.width), dtype=np.float32)
    for obj in objects:
        pts = obj.to_world(solids.silhouette_points(obj.spec))
        ground = pts - (pts[:, 2] / L[2])[:, None] * L  # slide along the light onto z = 0
        uv = cam.project(ground)
        if not np.all(np.isfinite(uv)):
            continue
        hull = cv2.convexHull(np.round(uv * 4).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA, shift=2)
        # contact shadow right under the object
        base = cam.project(obj.to_world(solids.silhouette_points(obj.spec)[
            : len(solids.silhouette_points(obj.spec)) // 2]))
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(base * 4).astype(np.int32)), 1.0,
                           lineType=cv2.LINE_AA, shift=2)
    k = max(3, int(round(cam.width / 640 * 9)) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    strength = 0.55 * env.light / (env.light + env.ambient)
    return 1.0 - strength * mask


def object_window(cam: Camera, obj: PlacedObject) -> tuple[slice, slice] | None:
    """Return the pixels (rows, columns) that the object's projected box may cover."""
    uv = cam.project(obj.corners())
    x0 = max(int(np.floor(uv[:, 0].min())) - 1, 0)
    x1 = min(int(np.ceil(uv[:, 0].max())) + 2, cam.width)
    y0 = max(int(np.floor(uv[:, 1].min())) - 1, 0)
    y1 = min(int(np.ceil(uv[:, 1].max())) + 2, cam.height)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


def trace_object(cam: Camera, rays: np.ndarray, obj: PlacedObject, env: Environment
                 ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Trace one object inside its projected box: ``(window, depth, rgb)``; ``inf`` = miss."""
    window = object_window(cam, obj)
    if window is None:
        return None
    (y0, y1), (x0, x1) = (window[0].start, window[0].stop), (window[1].start, window[1].stop)
    D = rays[window].reshape(-1, 3).astype(np.float64)
    R = obj.rotation()
    O_local = (cam.C - np.array([obj.x, obj.y, 0.0])) @ R
    D_local = D @ R
    t, normal, albedo, gloss = solids.trace(obj.spec, np.broadcast_to(O_local, D.shape), D_local)
    hit = np.isfinite(t)
    n_world = normal @ R.T
    L = np.asarray(env.light_dir)
    V = -D / np.linalg.norm(D, axis=1, keepdims=True)
    H = L[None] + V
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    lambert = np.clip(n_world @ L, 0.0, None)
    phong = np.clip((n_world * H).sum(axis=1), 0.0, None) ** 40
    rgb = albedo * (env.ambient + env.light * lambert)[:, None] + \
        (0.6 * gloss * env.light * phong)[:, None]
    rgb = rgb * np.asarray(env.tint)[None]
    shape = (y1 - y0, x1 - x0)
    depth = np.where(hit, t, np.inf).reshape(shape)
    return window, depth, rgb.reshape(shape + (3,))


def render(cam: Camera, env: Environment, objects: list[PlacedObject], rng: np.random.Generator,
           noise_rng: np.random.Generator | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render the scene.

    Returns ``(rgb HxWx3 uint8, depth HxW float32 metres, label HxW uint8, full_area)``, where
    ``full_area[i]`` is how many pixels object ``i`` would cover if nothing hid it. The sensor
    noise is drawn from ``noise_rng`` when given (else from ``rng``), so that the views of one
    scene can share its textures (``rng`` seeded alike) and still have fresh noise each.
    """
    rays = cam.rays().astype(np.float32)
    rgb, depth, label = render_room(cam, rays, env, rng)
    rgb *= np.where(label == TABLE, shadow_map(cam, objects, env), np.float32(1.0))[..., None]
    full_area = np.zeros(len(objects), dtype=np.int64)
    for i, obj in enumerate(objects):
        traced = trace_object(cam, rays, obj, env)
        if traced is None:
            continue
        window, obj_depth, obj_rgb = traced
        full_area[i] = int(np.isfinite(obj_depth).sum())
        front = obj_depth < depth[window]
        depth[window][front] = obj_depth[front]
        rgb[window][front] = obj_rgb[front].astype(np.float32)
        label[window][front] = FIRST_OBJECT + i
    # sensor look: slight blur and noise; the labels stay exact
    image = cv2.GaussianBlur(rgb, (3, 3), 0.6)
    image = image * np.float32(255.0) + np.float32(0.5)
    noise = rng if noise_rng is None else noise_rng
    image += noise.standard_normal(size=image.shape, dtype=np.float32) * np.float32(2.0)
    image = np.clip(image, 0, 255).astype(np.uint8)
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    return image, depth, label, full_area
