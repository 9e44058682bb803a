"""The pinhole camera looking down at the table: intrinsics, pose, rays and projection.

World frame: x to the right, y away from the camera along the table, z up; the table top is the
plane z = 0. Camera frame: the optical frame of ROS (x right, y down, z forward). A pixel's ray is
``C + t * d`` with ``d = R @ K^-1 [u, v, 1]`` (pixel centres at integer coordinates, as in
OpenCV and ROS): its third camera coordinate is 1, so the
ray parameter ``t`` of a hit *is* the depth (camera z) in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Intrinsics ``K`` (3x3), image size and pose (``R`` camera-to-world, centre ``C``)."""

    K: np.ndarray
    width: int
    height: int
    R: np.ndarray
    C: np.ndarray
    pitch_deg: float
    yaw_deg: float
    roll_deg: float

    def rays(self) -> np.ndarray:
        """Return the HxWx3 world directions of every pixel (camera z component = 1)."""
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        u = (np.arange(self.width, dtype=np.float64) - cx) / fx
        v = (np.arange(self.height, dtype=np.float64) - cy) / fy
        d_cam = np.empty((self.height, self.width, 3))
        d_cam[..., 0] = u[None, :]
        d_cam[..., 1] = v[:, None]
        d_cam[..., 2] = 1.0
        return d_cam @ self.R.T

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """Express Nx3 world points in the camera optical frame."""
        return (np.asarray(points_world, dtype=np.float64) - self.C) @ self.R

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """Project Nx3 world points to Nx2 pixel coordinates (x = column, y = row)."""
        pc = self.to_camera(points_world)
        z = np.maximum(pc[:, 2], 1e-6)
        u = self.K[0, 0] * pc[:, 0] / z + self.K[0, 2]
        v = self.K[1, 1] * pc[:, 1] / z + self.K[1, 2]
        return np.stack([u, v], axis=1)

    def viewer_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the horizontal unit vectors "to the viewer's right" and "away from the viewer"."""
        right = self.R[:, 0].copy()
        right[2] = 0.0
        right /= np.linalg.norm(right)
        away = np.array([-right[1], right[0], 0.0])
        return right, away


def rotation(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """Camera-to-world rotation of a camera pitched down by ``pitch_deg`` then yawed and rolled."""
    p, y, r = np.radians([pitch_deg, yaw_deg, roll_deg])
    x_c = np.array([1.0, 0.0, 0.0])
    z_c = np.array([0.0, np.cos(p), -np.sin(p)])
    y_c = np.cross(z_c, x_c)
    R = np.stack([x_c, y_c, z_c], axis=1)
    cz, sz = np.cos(y), np.sin(y)
    yaw = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    cr, sr = np.cos(r), np.sin(r)
    roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])  # about the optical axis
    return yaw @ R @ roll


def sample_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    """Draw intrinsics near a 640x480 RGB-D camera (scaled to ``width``) and a pose over a table."""
    scale = width / 640.0
    f = rng.uniform(525.0, 615.0) * scale
    cx = width / 2.0 + rng.normal(0.0, 3.0) * scale
    cy = height / 2.0 + rng.normal(0.0, 3.0) * scale
    K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    pitch = rng.uniform(28.0, 47.0)
    yaw = rng.uniform(-7.0, 7.0)
    roll = rng.uniform(-2.5, 2.5)
    cam_height = rng.uniform(0.50, 0.72)
    C = np.array([rng.uniform(-0.05, 0.05), 0.0, cam_height])
    return Camera(K, int(width), int(height), rotation(pitch, yaw, roll), C, pitch, yaw, roll)
