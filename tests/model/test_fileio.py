"""Atomic files and PNG encoding (``refseg_model.fileio``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

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
