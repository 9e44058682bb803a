"""A real camera's frames: photometric augmentation for training, named perturbations for scoring.

Training (``TrainConfig.photometric``) draws, per image, a camera-like change of the picture:
exposure (gain 0.55-1.4 by default; :class:`ExposureDraw`, ``TrainConfig.exposure``: the
``tabletop`` preset draws 0.55-1.45, as often brighter as darker), gamma (0.8-1.25), a small
white-balance shift (red and blue gains within +-8%), sensor noise (sigma up to 9 grey levels), a
Gaussian blur (up to 7x7) and JPEG compression (quality 30-90). None of them can rename a colour:
gains and gamma act on every channel alike (hue is kept where nothing clips), and the
white-balance shift is a few percent, far smaller than the distance between the world's colour
names (``synth/objects.py``).

Scoring (``refseg-eval --perturb NAME``) applies one fixed condition to every image, the
conditions of the camera table of ``docs/RESULTS.md``: :data:`PERTURBATIONS`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


def exposure(rgb: np.ndarray, gain: float) -> np.ndarray:
    """Scale every channel by ``gain`` (a longer or shorter exposure), clipped to 0..255."""
    return np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def gamma(rgb: np.ndarray, g: float) -> np.ndarray:
    """Apply ``255 * (x / 255) ** g`` to every channel."""
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** g, 0, 255).astype(np.uint8)
    return table[rgb]


def white_balance(rgb: np.ndarray, red: float, blue: float) -> np.ndarray:
    """Scale the red and blue channels (a white-balance error), clipped to 0..255."""
    gains = np.array([red, 1.0, blue], dtype=np.float32)
    return np.clip(rgb.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian sensor noise of ``sigma`` grey levels to every pixel and channel."""
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def blur(rgb: np.ndarray, kernel: int) -> np.ndarray:
    """Gaussian blur with an odd ``kernel`` x ``kernel`` window (sigma from the size)."""
    if kernel < 3:
        return rgb.copy()
    return cv2.GaussianBlur(rgb, (kernel, kernel), 0)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG of ``quality`` (1-100) and decode again."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


@dataclass(frozen=True)
class ExposureDraw:
    """How :func:`photometric` draws an exposure gain (``TrainConfig.exposure``).

    With probability ``prob`` an image gets a gain in ``[low, high]``: log-uniform over the whole
    range, or, ``two_sided``, darker or brighter with equal odds and log-uniform within that side
    (which draws the far ends of a range that is not centred on 1 more often).
    """

    low: float = 0.55
    high: float = 1.4
    prob: float = 0.6
    two_sided: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.low <= 1.0 <= self.high:
            raise ValueError(f"exposure gains need 0 < low <= 1 <= high, got "
                             f"[{self.low}, {self.high}]")
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"exposure prob must be within [0, 1], got {self.prob}")

    def draw(self, rng: np.random.Generator) -> float | None:
        """Return a gain, or None for no exposure change."""
        if rng.random() >= self.prob:
            return None
        low, high = math.log(self.low), math.log(self.high)
        if self.two_sided:
            low, high = (low, 0.0) if rng.random() < 0.5 else (0.0, high)
        return float(np.exp(rng.uniform(low, high)))


def photometric(rgb: np.ndarray, rng: np.random.Generator,
                exposure_draw: ExposureDraw = ExposureDraw()) -> np.ndarray:
    """Return a camera-like variant of ``rgb`` (HxWx3 uint8) drawn from ``rng``.

    About a third of the images are left clean, so the clean picture stays in the training
    distribution; each change is drawn independently of the others. ``exposure_draw`` sets the
    exposure gains (the default draws exactly as before it existed).
    """
    if rng.random() < 0.3:
        return rgb
    out = rgb
    gain = exposure_draw.draw(rng)
    if gain is not None:
        out = exposure(out, gain)
    if rng.random() < 0.3:
        out = gamma(out, float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))))
    if rng.random() < 0.4:
        out = white_balance(out, float(rng.uniform(0.92, 1.08)), float(rng.uniform(0.92, 1.08)))
    if rng.random() < 0.3:
        out = blur(out, int(rng.choice([3, 5, 7])))
    if rng.random() < 0.4:
        out = noise(out, float(rng.uniform(2.0, 9.0)), rng)
    if rng.random() < 0.3:
        out = jpeg(out, int(rng.integers(30, 91)))
    return out


def _seeded(fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]
            ) -> Callable[[np.ndarray], np.ndarray]:
    def apply(rgb: np.ndarray) -> np.ndarray:
        return fn(rgb, np.random.default_rng(zlib.crc32(rgb.tobytes())))
    return apply


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "noise8": _seeded(lambda rgb, rng: noise(rgb, 8.0, rng)),
    "blur7": lambda rgb: blur(rgb, 7),
    "jpeg40": lambda rgb: jpeg(rgb, 40),
    "white_balance": lambda rgb: white_balance(rgb, 1.08, 0.92),
    "exposure0.6": lambda rgb: exposure(rgb, 0.6),
    "exposure1.3": lambda rgb: exposure(rgb, 1.3),
}
"""The camera conditions of the robustness table, by name (``refseg-eval --perturb NAME``):
sensor noise sigma 8, Gaussian blur 7x7, JPEG quality 40, white balance R x1.08 B x0.92, exposure
x0.6 and x1.3. The 16:9 stream is a dataset of its own (``refseg-synth --width 1280 --height 720``),
not a perturbation."""


def perturb(rgb: np.ndarray, name: str) -> np.ndarray:
    """Apply the named camera condition of :data:`PERTURBATIONS` to ``rgb`` (HxWx3 uint8)."""
    try:
        fn = PERTURBATIONS[name]
    except KeyError:
        raise ValueError(f"unknown perturbation {name!r}; choose one of "
                         f"{', '.join(PERTURBATIONS)}") from None
    return fn(rgb)
