"""The picture for rviz: the image with the mask tinted, its contour, the centroid and the text."""

from __future__ import annotations

import cv2
import numpy as np

from refseg_node.targets import Target

MASK_TINT_BGR = (0, 200, 255)        # orange-yellow for the whole mask
TARGET_CONTOUR_BGR = (0, 255, 0)      # green contour around the primary target
OTHER_CONTOUR_BGR = (0, 140, 255)     # orange contour around the other regions
CENTROID_BGR = (0, 0, 255)            # red cross
TINT_ALPHA = 0.45


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only; other characters become '?'."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def draw_overlay(rgb: np.ndarray, mask: np.ndarray, target: Target, text: str) -> np.ndarray:
    """Return a BGR uint8 picture: ``rgb`` with ``mask`` tinted, contours, centroid and ``text``.

    ``rgb`` is HxWx3 uint8, ``mask`` HxW bool (all regions), ``target`` the primary target of the
    mask, ``text`` the expression (or a status line) written in the top-left corner.
    """
    rgb = np.asarray(rgb)
    mask = np.asarray(mask, dtype=bool)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be HxWx3 uint8, got {rgb.shape} {rgb.dtype}")
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask {mask.shape} must match the image {rgb.shape[:2]}")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if mask.any():
        tint = np.array(MASK_TINT_BGR, np.float32)
        blended = bgr[mask].astype(np.float32) * (1 - TINT_ALPHA) + tint * TINT_ALPHA
        bgr[mask] = np.clip(blended, 0, 255).astype(np.uint8)
        thickness = max(1, round(min(mask.shape) / 240))
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(bgr, contours, -1, OTHER_CONTOUR_BGR, thickness)
        if target.found:
            contours, _ = cv2.findContours(target.region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(bgr, contours, -1, TARGET_CONTOUR_BGR, thickness + 1)
    if target.found:
        size = max(8, round(min(mask.shape) / 20))
        centre = (round(target.centroid[0]), round(target.centroid[1]))
        cv2.drawMarker(bgr, centre, CENTROID_BGR, cv2.MARKER_CROSS, size,
                       max(1, round(min(mask.shape) / 160)))
    _draw_text(bgr, _ascii(text))
    return bgr


def _draw_text(bgr: np.ndarray, text: str) -> None:
    """Write ``text`` white on a dark box in the top-left corner, scaled to the image."""
    if not text:
        return
    height, width = bgr.shape[:2]
    scale = max(0.3, min(width, height) / 600)
    thickness = max(1, round(scale * 1.5))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad = max(2, round(4 * scale))
    box_w, box_h = min(width, tw + 2 * pad), min(height, th + baseline + 2 * pad)
    bgr[:box_h, :box_w] = (bgr[:box_h, :box_w].astype(np.uint16) // 3).astype(np.uint8)
    cv2.putText(bgr, text, (pad, pad + th), font, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
