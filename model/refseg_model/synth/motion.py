"""Other views of a rendered scene: a camera that pans, and each object's true 3D geometry.

A pan turns the camera about the vertical axis through its centre (a tripod head), so the
picture moves while the room stays put; :func:`pan_offsets` gives a smooth back-and-forth sweep.
:func:`render_view` renders the scene's objects and room from such a camera, with the same
textures as every other view of that scene and fresh sensor noise. For measurements,
:func:`true_box` is an object's bounding box and :func:`visible_surface` the points of its
surface that a camera sees (traced finer than the pixels, other objects ignored), both in the
camera's optical frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from refseg_model.synth import render, solids
from refseg_model.synth.camera import Camera
from refseg_model.synth.scene import Scene, World


@dataclass(frozen=True)
class View:
    """One picture of a scene from ``camera``: RGB, depth in metres (0 = none) and labels."""

    rgb: np.ndarray
    depth_m: np.ndarray
    labels: np.ndarray
    camera: Camera
    pan_deg: float

    def object_mask(self, object_id: int) -> np.ndarray:
        """Visible pixels of object ``object_id`` (1-based) as HxW bool."""
        return self.labels == render.FIRST_OBJECT + object_id - 1


def _world(scene: Scene) -> World:
    if scene.world is None:
        raise ValueError("the scene has no world to render other views from (it was not made "
                         "by generate_scene or make_demo_scene)")
    return scene.world


def panned(camera: Camera, pan_deg: float) -> Camera:
    """Return ``camera`` turned by ``pan_deg`` about the vertical axis through its centre."""
    a = math.radians(pan_deg)
    c, s = math.cos(a), math.sin(a)
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return replace(camera, R=turn @ camera.R, yaw_deg=camera.yaw_deg + pan_deg)


def pan_offsets(amplitude_deg: float, period_s: float, rate_hz: float) -> list[float]:
    """Pan angles of one back-and-forth sweep, one per frame: ``A sin(2 pi t / period)``."""
    if period_s <= 0 or rate_hz <= 0:
        raise ValueError(f"period_s and rate_hz must be > 0, got {period_s}, {rate_hz}")
    frames = max(1, int(round(period_s * rate_hz)))
    return [amplitude_deg * math.sin(2 * math.pi * i / frames) for i in range(frames)]


def render_view(scene: Scene, pan_deg: float = 0.0, noise_seed: int = 0) -> View:
    """Render ``scene`` from its camera panned by ``pan_deg`` (sensor noise from ``noise_seed``)."""
    world = _world(scene)
    camera = panned(world.camera, pan_deg)
    rng = np.random.default_rng(list(world.render_seed))
    noise = np.random.default_rng([*world.render_seed, int(noise_seed)])
    rgb, depth, labels, _ = render.render(camera, world.environment, list(world.placed), rng,
                                          noise)
    return View(rgb, depth, labels, camera, float(pan_deg))


def true_box(scene: Scene, object_id: int, camera: Camera | None = None) -> np.ndarray:
    """Return the 8 corners (8x3, metres) of object ``object_id``'s box in the camera frame."""
    obj = _world(scene).placed[object_id - 1]
    return (camera or scene.world.camera).to_camera(obj.corners())


def inside_true_box(scene: Scene, object_id: int, point_camera, camera: Camera | None = None,
                    margin: float = 0.0) -> bool:
    """Tell whether a camera-frame point lies in object ``object_id``'s box (grown by margin)."""
    world = _world(scene)
    cam = camera or world.camera
    obj = world.placed[object_id - 1]
    p_world = np.asarray(point_camera, dtype=np.float64) @ cam.R.T + cam.C
    local = (p_world - np.array([obj.x, obj.y, 0.0])) @ obj.rotation()
    lo, hi = (np.asarray(b) for b in solids.bounds(obj.spec))
    return bool(np.all(local >= lo - margin) and np.all(local <= hi + margin))


def visible_surface(scene: Scene, object_id: int, camera: Camera | None = None,
                    oversample: int = 3) -> np.ndarray:
    """Points (Nx3, camera frame) of object ``object_id``'s surface that the camera sees.

    Rays through ``oversample`` x ``oversample`` points of every pixel of the object's window are
    traced against the object alone (other objects do not hide it), so the points' span is the
    object's extent as seen from there, free of pixel edges, depth quantisation and masks.
    """
    world = _world(scene)
    cam = camera or world.camera
    obj = world.placed[object_id - 1]
    window = render.object_window(cam, obj)
    if window is None:
        return np.zeros((0, 3))
    rows, cols = window
    step = 1.0 / oversample
    offsets = (np.arange(oversample) + 0.5) * step - 0.5
    u = (np.arange(cols.start, cols.stop)[:, None] + offsets[None]).ravel()
    v = (np.arange(rows.start, rows.stop)[:, None] + offsets[None]).ravel()
    uu, vv = np.meshgrid(u, v)
    d_cam = np.stack([(uu - cam.K[0, 2]) / cam.K[0, 0], (vv - cam.K[1, 2]) / cam.K[1, 1],
                      np.ones_like(uu)], axis=-1).reshape(-1, 3)
    d_world = d_cam @ cam.R.T
    rotation = obj.rotation()
    origin = (cam.C - np.array([obj.x, obj.y, 0.0])) @ rotation
    t, _, _, _ = solids.trace(obj.spec, np.broadcast_to(origin, d_world.shape),
                              d_world @ rotation)
    hit = np.isfinite(t)
    return d_cam[hit] * t[hit, None]  # the ray's camera z is 1, so t is the depth


def rotation_homography(K: np.ndarray, R_from: np.ndarray, R_to: np.ndarray) -> np.ndarray:
    """Return the 3x3 map of pixels between two views of a camera turned about its centre.

    ``R_from`` and ``R_to`` are camera-to-world rotations of the views; the centre is the same,
    so the map holds for every depth: ``p_to ~ K R_to^T R_from K^-1 p_from``. It moves a mask
    exactly as a pan moves the picture (what a tracker should do), whatever the mask covers.
    """
    K = np.asarray(K, dtype=np.float64)
    return K @ np.asarray(R_to).T @ np.asarray(R_from) @ np.linalg.inv(K)
