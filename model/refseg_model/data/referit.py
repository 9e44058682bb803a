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

import json
import os
from pathlib import Path

import numpy as np
import scipy.io

from refseg_model.data.base import DataError, Sample, SampleSource
from refseg_model.text import tokenize

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


class ReferItSource(SampleSource):
    """Samples of one ReferIt split read from the released-code layout under ``root``."""

    name = "referit"

    def __init__(self, root: str | os.PathLike, split: str = "test", on_error: str = "skip"):
        """Index the split; missing list / query files raise :class:`DataError` at once."""
        super().__init__(root, split, on_error)
        if split not in SPLITS:
            raise ValueError(f"ReferIt split must be one of {SPLITS}, got {split!r}")
        self.image_dir = self.root / "images"
        self.mask_dir = self.root / "mask"
        self.query_file = self.root / f"referit_query_{split}.json"
        self.imlist_file = self.root / f"referit_{split}_imlist.txt"
        queries = self._read_queries()
        image_ids = self._read_imlist()
        self.samples = self._index(queries, image_ids)
        self.summarize_problems()

    def _read_queries(self) -> dict[str, list[str]]:
        try:
            queries = json.loads(self.query_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"ReferIt query file not found: {self.query_file}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read ReferIt query file {self.query_file}: {exc}") from exc
        if not isinstance(queries, dict) or not all(
            isinstance(v, list) and all(isinstance(e, str) for e in v) for v in queries.values()
        ):
            raise DataError(f"{self.query_file}: expected {{\"<image>_<region>\": [str, ...]}}")
        return queries

    def _read_imlist(self) -> set[str]:
        try:
            text = self.imlist_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"ReferIt image list not found: {self.imlist_file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read ReferIt image list {self.imlist_file}: {exc}") from exc
        return {line.strip() for line in text.splitlines() if line.strip()}

    @staticmethod
    def _listdir(folder: Path) -> set[str]:
        try:
            return set(os.listdir(folder))
        except OSError:
            return set()

    def _index(self, queries: dict[str, list[str]], image_ids: set[str]) -> list[Sample]:
        images = self._listdir(self.image_dir)
        masks = self._listdir(self.mask_dir)
        samples: list[Sample] = []
        missing_images: set[str] = set()
        for region_key, expressions in queries.items():
            image_id, sep, region_id = region_key.partition("_")
            if not sep or not image_id or not region_id:
                self.problem("malformed region keys",
                             f"{self.query_file}: key {region_key!r} is not <image_id>_<region_id>")
                continue
            if image_id not in image_ids:
                continue
            image_path = self.image_dir / f"{image_id}.jpg"
            mask_path = self.mask_dir / f"{region_key}.mat"
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
                                 f"{self.query_file}: expression {k} of {region_key} is empty")
                    continue
                samples.append(Sample(f"{region_key}_{k}", image_id, region_id, expression,
                                      image_path, mask_path))
        return samples

    def load_mask(self, sample: Sample) -> np.ndarray:
        """Return the region's mask (``segimg_t == 0``) as HxW bool."""
        return load_referit_mask(sample.mask_ref)
