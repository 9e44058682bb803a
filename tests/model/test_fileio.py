"""Atomic files (``refseg_model.fileio``) and the mask drawer (``refseg_model.drawing``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from refseg_model.drawing import draw_mask, outline_mask, tint_mask
from refseg_model.fileio import atomic_open, atomic_write, encode_png, write_mask_png, write_png


def test_atomic_write_bytes_and_text(tmp_path):
    path = tmp_path / "a.json"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, "caf\u00e9\n", fsync=True)
    assert path.read_text(encoding="utf-8") == "caf\u00e9\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_write(path, b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(path) as handle:
            handle.write(b"half of the n")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "such" / "folder.txt", "x")


def test_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "c.png", bgr)
    assert np.array_equal(cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_UNCHANGED), bgr)
    depth = rng.integers(0, 65536, (4, 3), dtype=np.uint16)
    assert np.array_equal(cv2.imdecode(np.frombuffer(encode_png(depth, 1), np.uint8),
                                       cv2.IMREAD_UNCHANGED), depth)
    assert len(encode_png(depth, 0)) > len(encode_png(np.zeros_like(depth), 9))
    mask = rng.random((6, 4)) > 0.5
    write_mask_png(tmp_path / "m.png", mask)
    saved = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert saved.dtype == np.uint8 and set(np.unique(saved)) <= {0, 255}
    assert np.array_equal(saved == 255, mask)
    with pytest.raises(OSError, match="PNG"):
        encode_png(np.zeros((2, 2, 7), np.uint8))


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
