"""The one mask drawer (``refseg_model.drawing``): tint, outline and the node's overlay."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from refseg_model.drawing import (
    TARGET_CONTOUR_BGR,
    ascii_text,
    draw_mask,
    draw_overlay,
    outline_mask,
    tint_mask,
)


def test_tint_and_outline_by_hand():
    image = np.full((10, 12, 3), 100, np.uint8)
    mask = np.zeros((10, 12), bool)
    mask[3:7, 4:9] = True
    tinted = tint_mask(image.copy(), mask, (255, 0, 50), 0.5)
    assert (tinted[mask] == (177, 50, 75)).all() and (tinted[~mask] == 100).all()
    drawn = outline_mask(image.copy(), mask, (0, 255, 0), 1)
    border = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert (drawn[border] == (0, 255, 0)).all()
    assert (drawn[~mask] == 100).all() and (drawn[3:7, 4:9][1:-1, 1:-1] == 100).all()
    both = draw_mask(image.copy(), mask, tint=(255, 0, 50), outline=(0, 255, 0), alpha=0.5,
                     thickness=1)
    assert (both[border] == (0, 255, 0)).all() and (both[4:6, 5:8] == (177, 50, 75)).all()
    untinted = draw_mask(image.copy(), mask, tint=None, outline=(0, 255, 0), thickness=1)
    assert np.array_equal(untinted, drawn)
    same = image.copy()
    assert draw_mask(same, mask, tint=(1, 2, 3), outline=(4, 5, 6)) is same  # in place
    with pytest.raises(ValueError, match="must match"):
        tint_mask(image, mask[:5], (0, 0, 0), 0.5)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        outline_mask(image.astype(np.float32), mask, (0, 0, 0), 1)
    with pytest.raises(ValueError, match="alpha"):
        tint_mask(image, mask, (0, 0, 0), 1.5)


def test_overlay_tints_the_mask_and_marks_the_centroid():
    rgb = np.full((120, 160, 3), 100, np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[60:100, 20:60] = True
    ys, xs = np.nonzero(mask)
    centroid = (float(xs.mean()), float(ys.mean()))
    bgr = draw_overlay(rgb, mask, "the red cup on the left", primary=mask, centroid=centroid)
    assert bgr.shape == rgb.shape and bgr.dtype == np.uint8
    assert not np.array_equal(bgr[70, 30], [100, 100, 100])          # tinted inside
    assert np.array_equal(bgr[110, 150], [100, 100, 100])            # untouched outside
    assert np.array_equal(bgr[60, 40], TARGET_CONTOUR_BGR)          # primary outlined green
    cy, cx = round(centroid[1]), round(centroid[0])
    assert bgr[cy, cx, 2] > 200 and bgr[cy, cx, 0] < 50              # red cross (BGR)
    assert (bgr[:12, :100] > 200).any()                              # white text, top left
    assert np.array_equal(rgb[0, 0], [100, 100, 100])                # the input is not changed
    plain = draw_overlay(rgb, np.zeros_like(mask), "")
    assert np.array_equal(plain, rgb[:, :, ::-1])
    draw_overlay(rgb, mask, "la tasse à gauche – 左")                 # non-ASCII is drawn
    assert ascii_text("à 左 b") == "? ? b"
    with pytest.raises(ValueError):
        draw_overlay(rgb[:, :, 0], mask, "x")
    with pytest.raises(ValueError):
        draw_overlay(rgb, mask[:10], "x")
