"""Ray intersections with the simple solids objects are built of, vectorised over pixels.

Every function takes ray origins ``org`` and directions ``D`` (Nx3, in the object's frame: z up,
the table at z = 0) and returns ``(t, normal)``: the ray parameter of the first hit (``inf`` on a
miss) and the Nx3 unit outward normal there. :func:`nearest` merges several parts.
"""

from __future__ import annotations

import numpy as np

INF = np.inf


def _miss(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, INF), np.zeros((n, 3))


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def frustum_roots(org: np.ndarray, D: np.ndarray, r0: float, r1: float, z0: float, z1: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both intersections of the rays with the infinite cone/cylinder through two circles.

    The surface is ``x^2 + y^2 = r(z)^2`` with ``r`` linear from ``r0`` at ``z0`` to ``r1`` at
    ``z1``. Returns ``(t_near, t_far, hit)``; the caller checks the height range.
    """
    k = (r1 - r0) / (z1 - z0)
    q = r0 + k * (org[:, 2] - z0)
    e = k * D[:, 2]
    a = D[:, 0] ** 2 + D[:, 1] ** 2 - e * e
    b = 2.0 * (org[:, 0] * D[:, 0] + org[:, 1] * D[:, 1] - q * e)
    c = org[:, 0] ** 2 + org[:, 1] ** 2 - q * q
    disc = b * b - 4.0 * a * c
    hit = (disc >= 0.0) & (np.abs(a) > 1e-12)
    sq = np.sqrt(np.where(hit, disc, 0.0))
    a_safe = np.where(hit, a, 1.0)
    ta, tb = (-b - sq) / (2.0 * a_safe), (-b + sq) / (2.0 * a_safe)
    return np.minimum(ta, tb), np.maximum(ta, tb), hit


def _frustum_normal(P: np.ndarray, r0: float, r1: float, z0: float, z1: float) -> np.ndarray:
    k = (r1 - r0) / (z1 - z0)
    rz = r0 + k * (P[:, 2] - z0)
    return _normalize(np.stack([P[:, 0], P[:, 1], -k * rz], axis=1))


def frustum(org: np.ndarray, D: np.ndarray, r0: float, r1: float, z0: float, z1: float,
            cap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Intersect a closed cone frustum (a cylinder if ``r0 == r1``), ``z0 < z1``, top cap."""
    n = len(org)
    t, normal = _miss(n)
    tn, tf, hit = frustum_roots(org, D, r0, r1, z0, z1)
    for root in (tf, tn):  # the nearer valid root wins, so it is written last
        z = org[:, 2] + root * D[:, 2]
        ok = hit & (root > 0) & (z >= z0) & (z <= z1) & (root < t)
        t = np.where(ok, root, t)
    P = org + t[:, None] * D
    side = np.isfinite(t)
    normal[side] = _frustum_normal(P[side], r0, r1, z0, z1)
    if cap:
        tc, nc = disk(org, D, z1, r1)
        better = tc < t
        t = np.where(better, tc, t)
        normal[better] = nc[better]
    return t, normal


def disk(org: np.ndarray, D: np.ndarray, z: float, r: float, up: bool = True
         ) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal disk of radius ``r`` centred on the z axis at height ``z``."""
    n = len(org)
    dz = np.where(np.abs(D[:, 2]) > 1e-12, D[:, 2], 1e-12)
    t = (z - org[:, 2]) / dz
    P = org + t[:, None] * D
    ok = (t > 0) & (P[:, 0] ** 2 + P[:, 1] ** 2 <= r * r)
    normal = np.zeros((n, 3))
    normal[:, 2] = 1.0 if up else -1.0
    return np.where(ok, t, INF), normal


def box(org: np.ndarray, D: np.ndarray, lo: tuple, hi: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box from corner ``lo`` to corner ``hi`` (slab method)."""
    n = len(org)
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    Ds = np.where(np.abs(D) > 1e-12, D, 1e-12)
    t1, t2 = (lo - org) / Ds, (hi - org) / Ds
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(tmin, axis=1)
    t_near = tmin[np.arange(n), axis]
    t_far = tmax.min(axis=1)
    ok = (t_near <= t_far) & (t_near > 0)
    normal = np.zeros((n, 3))
    normal[np.arange(n), axis] = -np.sign(Ds[np.arange(n), axis])
    return np.where(ok, t_near, INF), normal


def sphere_roots(org: np.ndarray, D: np.ndarray, centre: tuple, r: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both intersections with a sphere: ``(t_near, t_far, hit)``."""
    oc = org - np.asarray(centre, dtype=np.float64)
    a = (D * D).sum(axis=1)
    b = 2.0 * (oc * D).sum(axis=1)
    c = (oc * oc).sum(axis=1) - r * r
    disc = b * b - 4.0 * a * c
    hit = disc >= 0.0
    sq = np.sqrt(np.where(hit, disc, 0.0))
    return (-b - sq) / (2.0 * a), (-b + sq) / (2.0 * a), hit


def sphere(org: np.ndarray, D: np.ndarray, centre: tuple, r: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Solid sphere."""
    tn, _, hit = sphere_roots(org, D, centre, r)
    ok = hit & (tn > 0)
    t = np.where(ok, tn, INF)
    normal = np.zeros((len(org), 3))
    normal[ok] = (org[ok] + tn[ok, None] * D[ok] - np.asarray(centre)) / r
    return t, normal


def open_frustum_inside(org: np.ndarray, D: np.ndarray, r0: float, r1: float, z_bottom: float,
                        z_top: float) -> tuple[np.ndarray, np.ndarray]:
    """Inner wall and floor of an open container (cup), seen through its top opening."""
    n = len(org)
    t, normal = _miss(n)
    tc, _ = disk(org, D, z_top, r1)  # the ray must come in through the opening
    through = np.isfinite(tc)
    _, tf, hit = frustum_roots(org, D, r0, r1, z_bottom, z_top)
    z_far = org[:, 2] + tf * D[:, 2]
    wall = through & hit & (z_far >= z_bottom) & (z_far <= z_top)
    t = np.where(wall, tf, t)
    P = org + t[:, None] * D
    normal[wall] = -_frustum_normal(P[wall], r0, r1, z_bottom, z_top)
    tb, nb = disk(org, D, z_bottom, r0 + 1e-4)
    floor = through & ~wall & np.isfinite(tb)
    t = np.where(floor, tb, t)
    normal[floor] = nb[floor]
    return t, normal


def bowl(org: np.ndarray, D: np.ndarray, rim_r: float, h: float
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersect a bowl: a sphere segment, widest at its rim (height ``h``), flat at z = 0.

    Returns ``(t, normal, inside)``; ``inside`` marks hits on the inner surface.
    """
    zc = h + 0.35 * rim_r
    R = float(np.hypot(rim_r, zc - h))
    centre = (0.0, 0.0, zc)
    tn, tf, hit = sphere_roots(org, D, centre, R)
    n = len(org)
    t, normal = _miss(n)
    zn = org[:, 2] + tn * D[:, 2]
    zf = org[:, 2] + tf * D[:, 2]
    outer = hit & (tn > 0) & (zn >= 0.0) & (zn <= h)
    inner = hit & ~outer & (zn > h) & (zf >= 0.004) & (zf <= h)
    t = np.where(outer, tn, np.where(inner, tf, INF))
    P = org + t[:, None] * D
    normal[outer] = (P[outer] - centre) / R
    normal[inner] = -(P[inner] - centre) / R
    # looking in through the rim at the flat inner bottom
    tb, nb = disk(org, D, 0.004, float(np.sqrt(max(R * R - (zc - 0.004) ** 2, 0.0))))
    floor = hit & ~outer & ~inner & (zn > h) & np.isfinite(tb)
    t = np.where(floor, tb, t)
    normal[floor] = nb[floor]
    return t, normal, inner | floor


def nearest(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Merge parts: return ``(t, normal, part_index)`` of the nearest hit (-1 on a miss)."""
    ts = np.stack([p[0] for p in parts], axis=0)
    idx = np.argmin(ts, axis=0)
    cols = np.arange(ts.shape[1])
    t = ts[idx, cols]
    normals = np.stack([p[1] for p in parts], axis=0)[idx, cols]
    idx = np.where(np.isfinite(t), idx, -1)
    return t, normals, idx
