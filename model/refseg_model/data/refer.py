"""RefCLEF / RefCOCO / RefCOCO+ / RefCOCOg in the layout of the ``refer`` toolkit.

::

    DIR/<dataset>/refs(<split_by>).p     pickled list of refs: ref_id, ann_id, image_id, split,
                                         sentences [{"sent", "raw", "tokens", ...}], ...
    DIR/<dataset>/instances.json         COCO style: images (id, file_name, height, width) and
                                         annotations (id, image_id, segmentation: polygons or RLE)
    DIR/images/saiapr_tc-12/<file_name>           refclef
    DIR/images/mscoco/images/train2014/<file_name> refcoco, refcoco+, refcocog

``image_dir`` overrides the image folder. A sample is one (ref, sentence) pair with id
``<image_id>_<ref_id>_<k>``; its expression is the sentence's ``raw`` text (``sent`` if absent).

Security: ``refs(*).p`` is a pickle. It is read with a restricted unpickler that refuses every
global except a few plain builtins (dict, list, tuple, set, str, bytes, int, float, bool), so
loading a data file can never run code; anything else raises :class:`DataError`.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from refseg_model.data.base import DataError, Sample, SampleSource
from refseg_model.text import tokenize

DEFAULT_SPLIT_BY = {"refclef": "unc", "refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
_SAFE_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool"}
)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves no global but plain builtin containers and scalars."""

    def find_class(self, module: str, name: str):
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return super().find_class("builtins", name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data allowed")


def safe_load_pickle(path: str | os.PathLike):
    """Load a pickle of plain data (dict/list/str/int/float...) without running any code."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"refs file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read refs file {path}: {exc}") from exc
    try:
        return _SafeUnpickler(io.BytesIO(data), encoding="utf-8", errors="replace").load()
    except Exception as exc:  # UnpicklingError, EOFError, ValueError... for corrupt files
        raise DataError(f"cannot load refs file {path}: {exc}") from exc


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation (polygon list, uncompressed or compressed RLE) to HxW bool."""
    if isinstance(segmentation, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            counts = segmentation["counts"]
            rle = {"size": list(segmentation["size"]),
                   "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise ValueError(f"unknown segmentation format: {type(segmentation).__name__}")
    with warnings.catch_warnings():  # pycocotools 2.0.x: numpy 2 "copy keyword" deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        mask = mask_utils.decode(rle)
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    return mask.astype(bool)


class ReferSource(SampleSource):
    """Samples of one split of a ``refer`` toolkit dataset under ``root``."""

    name = "refer"

    def __init__(self, root: str | os.PathLike, split: str = "test", on_error: str = "skip", *,
                 dataset: str = "refcoco", split_by: str | None = None,
                 image_dir: str | os.PathLike | None = None):
        """Index the refs of ``split``; missing refs / instances files raise at once."""
        super().__init__(root, split, on_error)
        self.dataset = dataset
        self.split_by = split_by or DEFAULT_SPLIT_BY.get(dataset, "unc")
        self.name = f"refer/{dataset}({self.split_by})"
        folder = self.root / dataset
        self.refs_file = folder / f"refs({self.split_by}).p"
        self.instances_file = folder / "instances.json"
        if image_dir is not None:
            self.image_dir = Path(image_dir)
        elif dataset == "refclef":
            self.image_dir = self.root / "images" / "saiapr_tc-12"
        else:
            self.image_dir = self.root / "images" / "mscoco" / "images" / "train2014"
        if not self.refs_file.is_file():
            found = sorted(p.name for p in folder.glob("refs(*).p")) if folder.is_dir() else []
            raise DataError(f"refs file not found: {self.refs_file} (found: {found or 'none'})")
        refs = safe_load_pickle(self.refs_file)
        images, annotations = self._read_instances()
        self._images = images
        self._annotations = annotations
        self.samples = self._index(refs)
        self.summarize_problems()

    def _read_instances(self) -> tuple[dict, dict]:
        try:
            inst = json.loads(self.instances_file.read_text(encoding="utf-8"))
            images = {im["id"]: im for im in inst["images"]}
            annotations = {ann["id"]: ann for ann in inst["annotations"]}
        except FileNotFoundError:
            raise DataError(f"instances file not found: {self.instances_file}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read instances file {self.instances_file}: "
                            f"{type(exc).__name__}: {exc}") from exc
        return images, annotations

    def _index(self, refs) -> list[Sample]:
        if not isinstance(refs, list):
            raise DataError(f"{self.refs_file}: expected a list of refs, got {type(refs).__name__}")
        splits = {r.get("split") for r in refs if isinstance(r, dict)}
        if self.split not in splits:
            raise DataError(f"{self.refs_file}: no refs in split {self.split!r} "
                            f"(splits: {sorted(str(s) for s in splits)})")
        samples: list[Sample] = []
        image_ok: dict[int, bool] = {}
        for ref in refs:
            if not isinstance(ref, dict) or ref.get("split") != self.split:
                continue
            try:
                ref_id, ann_id, image_id = ref["ref_id"], ref["ann_id"], ref["image_id"]
                sentences = ref["sentences"]
            except KeyError as exc:
                self.problem("malformed refs", f"{self.refs_file}: a ref lacks {exc}")
                continue
            image = self._images.get(image_id)
            if image is None:
                self.problem("missing images", f"{self.instances_file}: no image {image_id} "
                             f"(ref {ref_id})", len(sentences))
                continue
            image_path = self.image_dir / image["file_name"]
            if image_id not in image_ok:
                image_ok[image_id] = image_path.is_file()
                logged = True
            else:
                logged = False
            if not image_ok[image_id]:
                self.problem("missing images", f"image file not found: {image_path}",
                             len(sentences), logged=logged)
                continue
            if ann_id not in self._annotations:
                self.problem("missing masks", f"{self.instances_file}: no annotation {ann_id} "
                             f"(ref {ref_id})", len(sentences))
                continue
            for k, sentence in enumerate(sentences):
                text = sentence.get("raw") or sentence.get("sent") or ""
                if not tokenize(text):
                    self.problem("empty expressions",
                                 f"{self.refs_file}: sentence {k} of ref {ref_id} is empty")
                    continue
                samples.append(Sample(f"{image_id}_{ref_id}_{k}", str(image_id), str(ref_id),
                                      text, image_path, ann_id))
        return samples

    def load_mask(self, sample: Sample) -> np.ndarray:
        """Decode the ref's annotation (polygons or RLE) to an HxW bool mask."""
        ann = self._annotations[sample.mask_ref]
        image = self._images[ann["image_id"]]
        try:
            return decode_segmentation(ann["segmentation"], int(image["height"]),
                                       int(image["width"]))
        except Exception as exc:
            raise DataError(f"{self.instances_file}: cannot decode the segmentation of "
                            f"annotation {sample.mask_ref}: {exc}") from exc
