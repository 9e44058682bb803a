"""Files written whole or not at all: a temporary file in the same folder, then a rename.

A reader (another process, a crash, a full disk) never sees a half-written file: it sees the old
content or the new one. Every file ``refseg_model`` writes (checkpoints, configs, vocabularies,
datasets, masks, metrics) goes through :func:`atomic_open` or one of the helpers built on it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[BinaryIO]:
    """Open a binary file that replaces ``path`` when the ``with`` block ends without an error.

    The data goes to ``.<name>.<pid>.<thread>.tmp`` next to ``path`` (same file system, so the
    rename is atomic), which is removed if the block raises. With ``fsync`` the data and the
    rename are flushed to the disk before returning (checkpoints: survive a power cut).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if fsync:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not possible on every platform: then skip it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str, *, fsync: bool = False) -> None:
    """Write ``data`` (bytes, or text written as UTF-8) to ``path`` atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_open(path, fsync=fsync) as handle:
        handle.write(data)


def encode_png(image: np.ndarray, compression: int | None = None) -> bytes:
    """Return the PNG bytes of ``image`` (mono, or 3 / 4 channels in OpenCV's BGR(A) order).

    ``compression`` is the zlib level 0-9 (OpenCV's default, 3, when ``None``).
    """
    image = np.asarray(image)
    params = [] if compression is None else [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]
    try:
        ok, buf = cv2.imencode(".png", image, params)
    except cv2.error as exc:
        raise OSError(f"cannot encode a {image.shape} {image.dtype} image as PNG: {exc}") from exc
    if not ok:
        raise OSError(f"cannot encode a {image.shape} {image.dtype} image as PNG")
    return buf.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray, compression: int | None = None
              ) -> None:
    """Write ``image`` (as :func:`encode_png` takes it) as a PNG file, atomically."""
    atomic_write(path, encode_png(image, compression))


def write_mask_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write an HxW bool mask as a mono8 PNG (255 = target), atomically."""
    write_png(path, np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8))
