"""Drawing a mask on a picture: a translucent tint and an outline.

One drawer for every picture of a mask: ``refseg-predict --overlay``, the contact sheet of the
synthetic world and the node's rviz overlay. Colours are in the image's own channel order (RGB
for an RGB picture, BGR for OpenCV's); the picture is changed in place and returned.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} must match the image {image.shape[:2]}")
    return mask


def tint_mask(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int],
              alpha: float) -> np.ndarray:
    """Blend ``colour`` into the pixels of ``mask``: ``(1 - alpha) * pixel + alpha * colour``."""
    mask = _check(image, mask)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if mask.any():
        blended = (image[mask].astype(np.float32) * (1.0 - alpha)
                   + np.asarray(colour, np.float32) * alpha)
        image[mask] = np.clip(blended, 0, 255).astype(np.uint8)
    return image


def outline_mask(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int],
                 thickness: int) -> np.ndarray:
    """Draw the outer contours of the regions of ``mask`` in ``colour``."""
    mask = _check(image, mask)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, tuple(int(c) for c in colour), int(thickness))
    return image


def draw_mask(image: np.ndarray, mask: np.ndarray, *, tint: tuple[int, int, int] | None,
              outline: tuple[int, int, int], alpha: float = 0.5, thickness: int = 2
              ) -> np.ndarray:
    """Tint ``mask`` (unless ``tint`` is ``None``) and outline it, in place; return ``image``."""
    if tint is not None:
        tint_mask(image, mask, tint, alpha)
    return outline_mask(image, mask, outline, thickness)
