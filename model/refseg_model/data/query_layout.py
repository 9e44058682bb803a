"""The layout ReferIt and the synthetic datasets share: a query JSON and an image list per split.

::

    DIR/<image_folder>/<image_id>.<image_ext>
    DIR/<mask_folder>/<image_id>_<region_id>.<mask_ext>
    DIR/<prefix>_query_<split>.json          {"<image_id>_<region_id>": ["expression", ...]}
    DIR/<prefix>_<split>_imlist.txt          image ids of the split, one a line

``<prefix>`` is the source's :attr:`~QueryLayoutSource.name`. A sample is one (region, expression)
pair of a region whose image is in the split's image list; its id is ``<image_id>_<region_id>_<k>``,
``k`` the expression's index in the region's list.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from refseg_model.data.base import DataError, Sample, SampleSource, read_json
from refseg_model.text import tokenize


def _listdir(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


class QueryLayoutSource(SampleSource):
    """Samples of one split of a query-JSON + image-list layout under ``root``.

    Subclasses set :attr:`name` (the file prefix), :attr:`title` (the dataset in messages),
    :attr:`splits`, the folders and extensions of images and masks, the mask file decoder
    :attr:`read_mask` and optionally :attr:`parts` (splits read as the union of others).
    """

    title = "base"
    splits: tuple[str, ...] = ()
    parts: dict[str, tuple[str, ...]] = {}
    image_folder: str
    image_ext: str
    mask_folder: str
    mask_ext: str
    read_mask: Callable[[str | os.PathLike], np.ndarray]

    def __init__(self, root: str | os.PathLike, split: str, on_error: str = "skip"):
        """Index the split; missing list / query files raise :class:`DataError` at once."""
        super().__init__(root, split, on_error)
        if split not in self.splits:
            raise ValueError(f"{self.title} split must be one of {self.splits}, got {split!r}")
        self.image_dir = self.root / self.image_folder
        self.mask_dir = self.root / self.mask_folder
        queries: dict[str, list[str]] = {}
        origin: dict[str, Path] = {}
        image_ids: set[str] = set()
        for part in self.parts.get(split, (split,)):
            query_file = self.root / f"{self.name}_query_{part}.json"
            part_queries = self._read_queries(query_file)
            queries.update(part_queries)
            origin.update(dict.fromkeys(part_queries, query_file))
            image_ids |= self._read_imlist(self.root / f"{self.name}_{part}_imlist.txt")
        self.samples = self._index(queries, origin, image_ids)
        self.summarize_problems()

    def _read_queries(self, path: Path) -> dict[str, list[str]]:
        queries = read_json(path, f"{self.title} query")
        if not isinstance(queries, dict) or not all(
            isinstance(v, list) and all(isinstance(e, str) for e in v) for v in queries.values()
        ):
            raise DataError(f"{path}: expected {{\"<image_id>_<region_id>\": [str, ...]}}")
        return queries

    def _read_imlist(self, path: Path) -> set[str]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{self.title} image list not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {self.title} image list {path}: {exc}") from exc
        return {line.strip() for line in text.splitlines() if line.strip()}

    def _index(self, queries: dict[str, list[str]], origin: dict[str, Path],
               image_ids: set[str]) -> list[Sample]:
        images = _listdir(self.image_dir)
        masks = _listdir(self.mask_dir)
        samples: list[Sample] = []
        missing_images: set[str] = set()
        for region_key, expressions in queries.items():
            image_id, sep, region_id = region_key.partition("_")
            if not sep or not image_id or not region_id:
                self.problem("malformed region keys", f"{origin[region_key]}: key "
                             f"{region_key!r} is not <image_id>_<region_id>")
                continue
            if image_id not in image_ids:
                continue
            image_path = self.image_dir / f"{image_id}.{self.image_ext}"
            mask_path = self.mask_dir / f"{region_key}.{self.mask_ext}"
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
                    self.problem("empty expressions", f"{origin[region_key]}: expression {k} "
                                 f"of {region_key} is empty")
                    continue
                samples.append(Sample(f"{region_key}_{k}", image_id, region_id, expression,
                                      image_path, mask_path))
        return samples

    def load_mask(self, sample: Sample) -> np.ndarray:
        """Return the region's mask as HxW bool, decoded by :attr:`read_mask`."""
        return self.read_mask(sample.mask_ref)
