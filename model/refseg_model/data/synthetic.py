"""Reader of the synthetic tabletop datasets written by ``refseg-synth``.

::

    DIR/images/<image_id>.png              RGB
    DIR/depth/<image_id>.png               uint16 depth in millimetres (0 = no depth)
    DIR/camera/<image_id>.json             {"width", "height", "K": [fx,0,cx,0,fy,cy,0,0,1]}
    DIR/masks/<image_id>_<region_id>.png   mono8, 255 = region
    DIR/synthetic_query_<split>.json       {"<image_id>_<region_id>": ["expression", ...]}
    DIR/synthetic_kinds_<split>.json       {"<image_id>_<region_id>": [{"kind", "strategy"}, ...]}
    DIR/synthetic_<split>_imlist.txt       image ids, one a line

A sample is one (region, expression) pair with id ``<image_id>_<region_id>_<k>``. Splits:
``train``, ``val``, ``test`` (and ``trainval``, the union of the first two). The kinds file is
optional (datasets written before it existed have none) and read only when a kind is asked for:
entry ``k`` of a region's list is the kind of expression ``k``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from refseg_model.data.base import DataError, ExpressionKind, Sample, decode_image, read_json
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
        self._kinds: dict[str, list[ExpressionKind]] | None = None

    def _read_kinds(self) -> dict[str, list[ExpressionKind]]:
        """Read the kinds files of the split (absent ones add nothing); check them."""
        if self._kinds is not None:
            return self._kinds
        kinds: dict[str, list[ExpressionKind]] = {}
        for part in self.parts.get(self.split, (self.split,)):
            path = self.root / f"{self.name}_kinds_{part}.json"
            if not path.is_file():
                continue
            data = read_json(path, "synthetic kinds")
            try:
                kinds.update({key: [ExpressionKind(str(e["kind"]), str(e["strategy"]))
                                    for e in entries] for key, entries in data.items()})
            except (AttributeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}: expected {{\"<image_id>_<region_id>\": "
                                f"[{{\"kind\": str, \"strategy\": str}}, ...]}} ({exc!r})"
                                ) from exc
            queries = self._read_queries(self.root / f"{self.name}_query_{part}.json")
            for key, expressions in queries.items():
                if key in data and len(data[key]) != len(expressions):
                    raise DataError(f"{path}: {key} has {len(data[key])} kinds for "
                                    f"{len(expressions)} expressions")
        self._kinds = kinds
        return kinds

    def has_expression_kinds(self) -> bool:
        """Return whether a ``synthetic_kinds_<split>.json`` file names any expression's kind."""
        return bool(self._read_kinds())

    def expression_kind(self, sample: Sample) -> ExpressionKind | None:
        """Return the kind of the sample's expression, ``None`` when the kinds file lacks it."""
        entries = self._read_kinds().get(f"{sample.image_id}_{sample.region_id}")
        k = int(sample.sample_id.rsplit("_", 1)[1])
        return entries[k] if entries is not None and k < len(entries) else None

    def image_size(self, sample: Sample) -> tuple[int, int]:
        """Return the (height, width) of the sample's image, from its camera file."""
        camera = read_json(self.root / "camera" / f"{sample.image_id}.json", "camera")
        return int(camera["height"]), int(camera["width"])

    def load_depth(self, sample: Sample) -> np.ndarray:
        """Return the depth of the sample's image as HxW float32 metres (0 = no depth)."""
        return read_depth_png(self.root / "depth" / f"{sample.image_id}.png")

    def load_camera(self, sample: Sample) -> dict:
        """Return the camera of the sample's image: ``{"width", "height", "K" (3x3)}``."""
        return read_camera_json(self.root / "camera" / f"{sample.image_id}.json")
