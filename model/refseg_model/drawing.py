"""Drawing a mask on a picture: a translucent tint, an outline, a centroid cross, a text line.

One drawer for every picture of a mask: ``refseg-predict --overlay``, the contact sheet of the
synthetic world and the node's rviz overlay (:func:`draw_overlay`). Colours are in the image's
own channel order (RGB for an RGB picture, BGR for OpenCV's); the helpers change the picture in
place and return it.
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


# The node's /refseg/overlay (BGR).
MASK_TINT_BGR = (0, 200, 255)        # orange-yellow for the whole mask
TARGET_CONTOUR_BGR = (0, 255, 0)      # green contour around the primary target
OTHER_CONTOUR_BGR = (0, 140, 255)     # orange contour around the other regions
CENTROID_BGR = (0, 0, 255)            # red cross
TINT_ALPHA = 0.45


def ascii_text(text: str) -> str:
    """Return ``text`` with every non-ASCII character as '?' (OpenCV's Hershey fonts are ASCII)."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def draw_overlay(rgb: np.ndarray, mask: np.ndarray, text: str, *,
                 primary: np.ndarray | None = None,
                 centroid: tuple[float, float] | None = None) -> np.ndarray:
    """Return a new BGR uint8 picture: ``rgb`` with ``mask`` tinted, contours, cross and text.

    ``rgb`` is HxWx3 uint8, ``mask`` HxW bool (all regions, outlined in orange), ``primary`` the
    primary target's pixels (outlined thicker in green), ``centroid`` its (x, y) in pixels (a
    red cross) and ``text`` the expression (or a status line) written in the top-left corner.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be HxWx3 uint8, got {rgb.shape} {rgb.dtype}")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    mask = _check(bgr, mask)
    if mask.any():
        tint_mask(bgr, mask, MASK_TINT_BGR, TINT_ALPHA)
        thickness = max(1, round(min(mask.shape) / 240))
        outline_mask(bgr, mask, OTHER_CONTOUR_BGR, thickness)
        if primary is not None:
            outline_mask(bgr, primary, TARGET_CONTOUR_BGR, thickness + 1)
    if centroid is not None:
        size = max(8, round(min(mask.shape) / 20))
        centre = (round(centroid[0]), round(centroid[1]))
        cv2.drawMarker(bgr, centre, CENTROID_BGR, cv2.MARKER_CROSS, size,
                       max(1, round(min(mask.shape) / 160)))
    return draw_text(bgr, ascii_text(text))


def draw_text(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` white on a darkened box in the top-left corner, scaled to the image."""
    if not text:
        return image
    height, width = image.shape[:2]
    scale = max(0.3, min(width, height) / 600)
    thickness = max(1, round(scale * 1.5))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad = max(2, round(4 * scale))
    box_w, box_h = min(width, tw + 2 * pad), min(height, th + baseline + 2 * pad)
    image[:box_h, :box_w] = (image[:box_h, :box_w].astype(np.uint16) // 3).astype(np.uint8)
    cv2.putText(image, text, (pad, pad + th), font, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    return image
