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

import json
import os
from pathlib import Path

import cv2
import numpy as np

from refseg_model.data.base import DataError, Sample, SampleSource
from refseg_model.text import tokenize

SPLITS = ("train", "val", "test", "trainval")


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """Read a mono8 mask PNG as HxW bool (True where the pixel is non-zero)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if mask is None:
        raise DataError(f"cannot decode mask file {path} (empty, truncated or not an image)")
    if mask.ndim != 2:
        raise DataError(f"mask file {path} must be single-channel, got shape {mask.shape}")
    return mask > 0


def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """Read a uint16 millimetre depth PNG as HxW float32 metres (0 = no depth)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"depth file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    depth = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if depth is None:
        raise DataError(f"cannot decode depth file {path} (empty, truncated or not an image)")
    if depth.ndim != 2 or depth.dtype != np.uint16:
        raise DataError(f"depth file {path} must be single-channel uint16, got "
                        f"{depth.dtype} with shape {depth.shape}")
    return depth.astype(np.float32) / 1000.0


def read_camera_json(path: str | os.PathLike) -> dict:
    """Read ``camera/<image_id>.json``: ``{"width", "height", "K"}`` with K as a 3x3 array."""
    path = Path(path)
    try:
        cam = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"camera file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read camera file {path}: {exc}") from exc
    try:
        K = np.asarray(cam["K"], dtype=np.float64).reshape(3, 3)
        width, height = int(cam["width"]), int(cam["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"camera file {path}: expected width, height and 9 numbers K ({exc})"
                        ) from exc
    return {"width": width, "height": height, "K": K}


class SyntheticSource(SampleSource):
    """Samples of one split of a ``refseg-synth`` dataset under ``root``."""

    name = "synthetic"

    def __init__(self, root: str | os.PathLike, split: str = "train", on_error: str = "skip"):
        """Index the split; a missing list or query file raises :class:`DataError` at once."""
        super().__init__(root, split, on_error)
        if split not in SPLITS:
            raise ValueError(f"synthetic split must be one of {SPLITS}, got {split!r}")
        parts = ("train", "val") if split == "trainval" else (split,)
        queries: dict[str, list[str]] = {}
        image_ids: list[str] = []
        for part in parts:
            queries.update(self._read_queries(self.root / f"synthetic_query_{part}.json"))
            image_ids += self._read_imlist(self.root / f"synthetic_{part}_imlist.txt")
        self.samples = self._index(queries, set(image_ids))
        self.summarize_problems()

    @staticmethod
    def _read_queries(path: Path) -> dict[str, list[str]]:
        try:
            queries = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"synthetic query file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read synthetic query file {path}: {exc}") from exc
        if not isinstance(queries, dict) or not all(
            isinstance(v, list) and all(isinstance(e, str) for e in v) for v in queries.values()
        ):
            raise DataError(f"{path}: expected {{\"<image_id>_<region_id>\": [str, ...]}}")
        return queries

    @staticmethod
    def _read_imlist(path: Path) -> list[str]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"synthetic image list not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read synthetic image list {path}: {exc}") from exc
        return [line.strip() for line in text.splitlines() if line.strip()]

    @staticmethod
    def _listdir(folder: Path) -> set[str]:
        try:
            return set(os.listdir(folder))
        except OSError:
            return set()

    def _index(self, queries: dict[str, list[str]], image_ids: set[str]) -> list[Sample]:
        images = self._listdir(self.root / "images")
        masks = self._listdir(self.root / "masks")
        samples: list[Sample] = []
        missing_images: set[str] = set()
        for region_key, expressions in queries.items():
            image_id, sep, region_id = region_key.partition("_")
            if not sep or not image_id or not region_id:
                self.problem("malformed region keys",
                             f"key {region_key!r} is not <image_id>_<region_id> "
                             f"(in {self.root}/synthetic_query_*.json)")
                continue
            if image_id not in image_ids:
                continue
            image_path = self.root / "images" / f"{image_id}.png"
            mask_path = self.root / "masks" / f"{region_key}.png"
            if image_path.name not in images:
                self.problem("missing images", f"image file not found: {image_path}",
                             len(expressions), logged=image_id not in missing_images)
                missing_images.add(image_id)
                continue
            if mask_path.name not in masks:
                self.problem("missing masks", f"mask file not found: {mask_path}",
                             len(expressions))
                continue
            for k, expression in enumerate(expressions):
                if not tokenize(expression):
                    self.problem("empty expressions",
                                 f"expression {k} of {region_key} is empty "
                                 f"(in {self.root}/synthetic_query_*.json)")
                    continue
                samples.append(Sample(f"{region_key}_{k}", image_id, region_id, expression,
                                      image_path, mask_path))
        return samples

    def load_mask(self, sample: Sample) -> np.ndarray:
        """Return the region's mask as HxW bool."""
        return read_mask_png(sample.mask_ref)

    def load_depth(self, sample: Sample) -> np.ndarray:
        """Return the depth of the sample's image as HxW float32 metres (0 = no depth)."""
        return read_depth_png(self.root / "depth" / f"{sample.image_id}.png")

    def load_camera(self, sample: Sample) -> dict:
        """Return the camera of the sample's image: ``{"width", "height", "K" (3x3)}``."""
        return read_camera_json(self.root / "camera" / f"{sample.image_id}.json")
