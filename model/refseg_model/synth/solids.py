"""Each category as a solid: its parts (from :mod:`shapes`) and how its surface is painted.

:func:`trace` intersects rays given in an object's own frame (z up, the object standing on the
table at the origin) with the object and returns the hit distance, normal, albedo and shininess.
"""

from __future__ import annotations

import numpy as np

from refseg_model.synth import shapes
from refseg_model.synth.objects import ObjectSpec

PAGES = np.array([0.94, 0.91, 0.83])


def _mix(a: np.ndarray, b, w) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 1:
        w = w[:, None]
    return a * (1.0 - w) + np.asarray(b, dtype=np.float64) * w


def bounds(spec: ObjectSpec) -> tuple[tuple, tuple]:
    """Return the object's bounding box ``(lo, hi)`` in its own frame."""
    r = spec.radius
    if spec.category in ("box", "book"):
        hx, hy = spec.dims["sx"] / 2, spec.dims["sy"] / 2
        return (-hx, -hy, 0.0), (hx, hy, spec.height)
    if spec.category == "cup":
        rt = spec.dims["r_top"]
        return (-rt, -rt, 0.0), (r + 0.002, rt, spec.height)
    return (-r, -r, 0.0), (r, r, spec.height)


def silhouette_points(spec: ObjectSpec, samples: int = 12) -> np.ndarray:
    """Points on the object's outline at its bottom and top (for shadows), in its own frame."""
    lo, hi = bounds(spec)
    if spec.category in ("box", "book"):
        xs, ys = np.meshgrid([lo[0], hi[0]], [lo[1], hi[1]])
        ring = np.stack([xs.ravel(), ys.ravel()], axis=1)
    else:
        a = np.linspace(0.0, 2 * np.pi, samples, endpoint=False)
        ring = spec.radius * np.stack([np.cos(a), np.sin(a)], axis=1)
    z_top = spec.height if spec.category != "ball" else 1.5 * spec.dims["r"]
    z_low = 0.0 if spec.category != "ball" else 0.5 * spec.dims["r"]
    low = np.column_stack([ring, np.full(len(ring), z_low)])
    top = np.column_stack([ring, np.full(len(ring), z_top)])
    return np.concatenate([low, top], axis=0)


def trace(spec: ObjectSpec, org: np.ndarray, D: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intersect local rays with the object: ``(t, normal, albedo Nx3, shininess N)``.

    ``shininess`` is the strength of the specular highlight (0 for matte parts).
    """
    body, metal, label = (np.asarray(c, dtype=np.float64) for c in spec.detail)
    cat, d = spec.category, spec.dims
    n = len(org)
    albedo = np.tile(body, (n, 1))
    gloss = np.full(n, 0.15)
    if cat == "cup":
        h, rt, rb = d["h"], d["r_top"], d["r_bottom"]
        zc = 0.5 * h
        arm = 0.011 * h / 0.09
        reach = spec.radius
        z_hi, z_lo = zc + 0.2 * h, zc - 0.25 * h  # the handle's arms start inside the wall
        wall_hi, wall_lo = (rb + (rt - rb) * z / h - 0.002 for z in (z_hi, z_lo))
        parts = [
            shapes.frustum(org, D, rb, rt, 0.0, h, cap=False),
            shapes.open_frustum_inside(org, D, rb - 0.003, rt - 0.003, 0.008, h),
            shapes.box(org, D, (wall_hi, -0.005, z_hi), (reach, 0.005, z_hi + arm)),
            shapes.box(org, D, (wall_lo, -0.005, z_lo - arm), (reach, 0.005, z_lo)),
            shapes.box(org, D, (reach - 0.008, -0.005, zc - 0.25 * h - arm),
                       (reach, 0.005, zc + 0.2 * h + arm)),
        ]
        t, normal, idx = shapes.nearest(parts)
        inside = idx == 1
        albedo[inside] *= 0.62
        P = org + np.where(np.isfinite(t), t, 0.0)[:, None] * D
        rim = (idx == 0) & (P[:, 2] > h - 0.006)
        albedo[rim] = _mix(albedo[rim], (1, 1, 1), 0.25)
        gloss[:] = 0.35
    elif cat in ("jar", "can"):
        h, r = d["h"], d["r"]
        if cat == "jar":
            lid_h = d["lid_h"]
            parts = [shapes.frustum(org, D, r, r, 0.0, h - lid_h),
                     shapes.frustum(org, D, 1.03 * r, 1.03 * r, h - lid_h, h)]
        else:
            parts = [shapes.frustum(org, D, r, r, 0.0, h - 0.006),
                     shapes.frustum(org, D, 0.9 * r, 0.9 * r, h - 0.006, h)]
        t, normal, idx = shapes.nearest(parts)
        P = org + np.where(np.isfinite(t), t, 0.0)[:, None] * D
        z = P[:, 2] / h
        if cat == "jar":
            band = (idx == 0) & (z > 0.30) & (z < 0.55) & (np.abs(normal[:, 2]) < 0.5)
            albedo[band] = label
            albedo[idx == 1] = metal
            gloss[:] = 0.5
        else:
            band = (idx == 0) & (((z > 0.08) & (z < 0.13)) | ((z > 0.80) & (z < 0.85)))
            albedo[band] = _mix(albedo[band], label, 0.8)
            top = (idx == 1) | ((idx == 0) & (normal[:, 2] > 0.5))
            albedo[top] = metal
            gloss[:] = 0.6
    elif cat == "bottle":
        h, r, rn = d["h"], d["r"], d["neck_r"]
        parts = [shapes.frustum(org, D, r, r, 0.0, 0.60 * h, cap=False),
                 shapes.frustum(org, D, r, rn, 0.60 * h, 0.78 * h, cap=False),
                 shapes.frustum(org, D, rn, rn, 0.78 * h, 0.93 * h, cap=False),
                 shapes.frustum(org, D, 1.1 * rn, 1.1 * rn, 0.93 * h, h)]
        t, normal, idx = shapes.nearest(parts)
        P = org + np.where(np.isfinite(t), t, 0.0)[:, None] * D
        z = P[:, 2] / h
        band = (idx == 0) & (z > 0.22) & (z < 0.42)
        albedo[band] = label
        albedo[idx == 3] = metal
        gloss[:] = 0.7
    elif cat in ("box", "book"):
        lo, hi = bounds(spec)
        t, normal = shapes.box(org, D, lo, hi)
        P = org + np.where(np.isfinite(t), t, 0.0)[:, None] * D
        z = P[:, 2] / spec.height
        side = np.abs(normal[:, 2]) < 0.5
        if cat == "box":
            band = side & (z > 0.42) & (z < 0.58)
            albedo[band] = _mix(albedo[band], label, 0.7)
            top = normal[:, 2] > 0.5
            inset = top & (np.abs(P[:, 0]) < 0.3 * (hi[0] - lo[0])) & \
                (np.abs(P[:, 1]) < 0.3 * (hi[1] - lo[1]))
            albedo[inset] = _mix(albedo[inset], (1, 1, 1), 0.18)
            gloss[:] = 0.1
        else:
            spine = side & (normal[:, 0] < -0.5)
            pages = side & ~spine & (z > 0.14) & (z < 0.86)
            lines = 0.93 + 0.07 * np.cos(P[:, 2] * 2400.0)
            albedo[pages] = PAGES * lines[pages, None]
            top = normal[:, 2] > 0.5
            title = top & (P[:, 1] > 0.15 * hi[1]) & (P[:, 1] < 0.55 * hi[1]) & \
                (np.abs(P[:, 0]) < 0.6 * hi[0])
            albedo[title] = _mix(albedo[title], label, 0.75)
            gloss[:] = 0.05
    elif cat == "ball":
        r = d["r"]
        t, normal = shapes.sphere(org, D, (0.0, 0.0, r), r)
        seam = np.abs(normal @ np.array([0.0, 0.6, 0.8])) < 0.06
        albedo[seam] = _mix(albedo[seam], (1, 1, 1), 0.6)
        gloss[:] = 0.55
    elif cat == "bowl":
        t, normal, inside = shapes.bowl(org, D, d["rim_r"], d["h"])
        albedo[inside] = _mix(albedo[inside], (1, 1, 1), 0.12)
        gloss[:] = 0.45
    else:
        raise ValueError(f"unknown category {cat!r}")
    return t, normal, albedo, gloss
