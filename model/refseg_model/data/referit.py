"""ReferIt in the layout of the paper's released code.

::

    DIR/images/<image_id>.jpg
    DIR/mask/<image_id>_<region_id>.mat      MATLAB file, variable segimg_t, foreground where == 0
    DIR/referit_query_<split>.json           {"<image_id>_<region_id>": ["expression", ...]}
    DIR/referit_<split>_imlist.txt           image ids of the split, one a line

A sample is one (region, expression) pair of a region whose image is in the split's image list;
its id is ``<image_id>_<region_id>_<k>``, ``k`` the expression's index in the region's list.
Splits: ``train``, ``val``, ``trainval``, ``test``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from refseg_model.data.base import DataError
from refseg_model.data.query_layout import QueryLayoutSource

SPLITS = ("train", "val", "trainval", "test")


def load_referit_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a ReferIt ``.mat`` mask: HxW bool, True where ``segimg_t == 0``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask file not found: {path}")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DataError(f"cannot read MATLAB mask file {path}: {exc}") from exc
    if "segimg_t" not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"mask file {path} has no variable 'segimg_t' (has {names})")
    seg = np.asarray(mat["segimg_t"])
    if seg.ndim != 2:
        raise DataError(f"mask file {path}: segimg_t must be 2-D, got shape {seg.shape}")
    return seg == 0


class ReferItSource(QueryLayoutSource):
    """Samples of one ReferIt split read from the released-code layout under ``root``."""

    name = "referit"
    title = "ReferIt"
    splits = SPLITS
    image_folder, image_ext = "images", "jpg"
    mask_folder, mask_ext = "mask", "mat"
    read_mask = staticmethod(load_referit_mask)

    def __init__(self, root: str | os.PathLike, split: str = "test", on_error: str = "skip"):
        """Index the split; missing list / query files raise :class:`DataError` at once."""
        super().__init__(root, split, on_error)
