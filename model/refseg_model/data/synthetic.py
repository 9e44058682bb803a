"""Reader of the synthetic tabletop datasets written by ``refseg-synth``.

::

    DIR/images/<image_id>.png              RGB
    DIR/depth/<image_id>.png               uint16 depth in millimetres (0 = no depth)
    DIR/camera/<image_id>.json             {"width", "height", "K": [fx,0,cx,0,fy,cy,0,0,1]}
    DIR/masks/<image_id>_<region_id>.png   mono8, 255 = region
    DIR/synthetic_query_<split>.json       {"<image_id>_<region_id>": ["expression", ...]}
    DIR/synthetic_<split>_imlist.txt       image ids, one a line

A sample is one (region, expression) pair with id ``<image_id>_<region_id>_<k>``. Splits:
``train``, ``val``, ``test`` (and ``trainval``, the union of the first two).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from refseg_model.data.base import DataError, Sample, decode_image, read_json
from refseg_model.data.query_layout import QueryLayoutSource

SPLITS = ("train", "val", "test", "trainval")


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """Read a mono8 mask PNG as HxW bool (True where the pixel is non-zero)."""
    mask = decode_image(path, "mask", cv2.IMREAD_UNCHANGED)
    if mask.ndim != 2:
        raise DataError(f"mask file {path} must be single-channel, got shape {mask.shape}")
    return mask > 0


def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """Read a uint16 millimetre depth PNG as HxW float32 metres (0 = no depth)."""
    depth = decode_image(path, "depth", cv2.IMREAD_UNCHANGED)
    if depth.ndim != 2 or depth.dtype != np.uint16:
        raise DataError(f"depth file {path} must be single-channel uint16, got "
                        f"{depth.dtype} with shape {depth.shape}")
    return depth.astype(np.float32) / 1000.0


def read_camera_json(path: str | os.PathLike) -> dict:
    """Read ``camera/<image_id>.json``: ``{"width", "height", "K"}`` with K as a 3x3 array."""
    cam = read_json(path, "camera")
    try:
        K = np.asarray(cam["K"], dtype=np.float64).reshape(3, 3)
        width, height = int(cam["width"]), int(cam["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"camera file {path}: expected width, height and 9 numbers K ({exc})"
                        ) from exc
    return {"width": width, "height": height, "K": K}


class SyntheticSource(QueryLayoutSource):
    """Samples of one split of a ``refseg-synth`` dataset under ``root``."""

    name = "synthetic"
    title = "synthetic"
    splits = SPLITS
    parts = {"trainval": ("train", "val")}
    image_folder, image_ext = "images", "png"
    mask_folder, mask_ext = "masks", "png"
    read_mask = staticmethod(read_mask_png)

    def __init__(self, root: str | os.PathLike, split: str = "train", on_error: str = "skip"):
        """Index the split; a missing list or query file raises :class:`DataError` at once."""
        super().__init__(root, split, on_error)

    def load_depth(self, sample: Sample) -> np.ndarray:
        """Return the depth of the sample's image as HxW float32 metres (0 = no depth)."""
        return read_depth_png(self.root / "depth" / f"{sample.image_id}.png")

    def load_camera(self, sample: Sample) -> dict:
        """Return the camera of the sample's image: ``{"width", "height", "K" (3x3)}``."""
        return read_camera_json(self.root / "camera" / f"{sample.image_id}.json")
