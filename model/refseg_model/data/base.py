"""What every dataset reader shares: samples, the error policy and the torch ``Dataset``.

A *sample* is one (region, expression) pair. A :class:`SampleSource` lists the samples of one split
of one dataset layout and loads their images and ground-truth masks. Problems with the data
(unreadable images, missing masks, empty expressions) are never silent: with ``on_error="raise"``
they raise :class:`DataError` naming the file; with ``on_error="skip"`` the sample is skipped, the
first few problems are logged one by one (file named) and a one-line summary with the counts is
logged by :meth:`SampleSource.summarize_problems`.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from refseg_model.augment import ExposureDraw, photometric
from refseg_model.preprocess import coarse_labels, letterbox, letterbox_mask, normalize
from refseg_model.text import MAX_LEN, Vocabulary

log = logging.getLogger("refseg_model.data")

ON_ERROR = ("skip", "raise")
MAX_LOGGED_PROBLEMS = 20


class DataError(RuntimeError):
    """A data file that is missing, unreadable or malformed; the message names it."""


@dataclass(frozen=True)
class Sample:
    """One (region, expression) pair.

    ``mask_ref`` is whatever the source needs to load the region's mask (a path, an annotation
    id...); ``sample_id`` is ``<image_id>_<region_id>_<k>`` with ``k`` the expression's index in
    its region's list.
    """

    sample_id: str
    image_id: str
    region_id: str
    expression: str
    image_path: Path
    mask_ref: Any


@dataclass(frozen=True)
class ExpressionKind:
    """What an expression asks for: its ``kind`` ("colour", "relation"...) and ``strategy``."""

    kind: str
    strategy: str


def decode_image(path: str | os.PathLike, what: str = "image",
                 flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file with OpenCV ``flags``; :class:`DataError` names the ``what`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise DataError(f"cannot decode {what} file {path} (empty, truncated or not an image)")
    return image


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse a UTF-8 JSON file; :class:`DataError` names the ``what`` file when it cannot."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {what} file {path}: {exc}") from exc


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (grey and RGBA images are converted)."""
    return cv2.cvtColor(decode_image(path), cv2.COLOR_BGR2RGB)


class SampleSource:
    """The samples of one split of one dataset, with loaders for their images and masks.

    Subclasses set :attr:`name`, fill :attr:`samples` (calling :meth:`problem` for every sample
    they drop) and implement :meth:`load_mask`.
    """

    name = "base"

    def __init__(self, root: str | os.PathLike, split: str, on_error: str = "skip"):
        """Remember where the data is and how to react to bad data."""
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.root = Path(root)
        self.split = split
        self.on_error = on_error
        self.samples: list[Sample] = []
        self.problems: Counter[str] = Counter()
        self._summarized = 0
        self._logged = 0

    # error policy -------------------------------------------------------------------------
    def problem(self, kind: str, message: str, count: int = 1, *, logged: bool = True) -> None:
        """Report bad data: raise :class:`DataError`, or count ``count`` skipped samples.

        ``kind`` names the problem in the summary ("missing masks"); ``logged=False`` counts
        without logging again (e.g. a missing image shared by several regions).
        """
        if self.on_error == "raise":
            raise DataError(message)
        self.problems[kind] += count
        if not logged:
            return
        self._logged += 1
        if self._logged <= MAX_LOGGED_PROBLEMS:
            log.warning("%s %s: skipping: %s", self.name, self.split, message)
        elif self._logged == MAX_LOGGED_PROBLEMS + 1:
            log.warning("%s %s: more problems; see the summary", self.name, self.split)

    def summarize_problems(self) -> str | None:
        """Log (once per new batch of problems) and return a summary of what was skipped."""
        total = sum(self.problems.values())
        if total == 0:
            return None
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.problems.items()))
        text = f"{self.name} {self.split} in {self.root}: skipped {total} samples ({counts})"
        if total != self._summarized:
            log.warning("%s", text)
            self._summarized = total
        return text

    # loading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.samples)

    def expressions(self) -> list[str]:
        """Return the expression of every sample, in sample order."""
        return [s.expression for s in self.samples]

    def has_expression_kinds(self) -> bool:
        """Return whether :meth:`expression_kind` knows the kinds of this split's expressions."""
        return False

    def expression_kind(self, sample: Sample) -> ExpressionKind | None:
        """Return what the sample's expression asks for, ``None`` when the dataset does not say."""
        return None

    def load_image(self, sample: Sample) -> np.ndarray:
        """Return the sample's image as HxWx3 uint8 RGB; raise :class:`DataError` if unreadable."""
        return read_rgb(sample.image_path)

    def image_size(self, sample: Sample) -> tuple[int, int]:
        """Return the (height, width) of the sample's image (decodes it; sources may do better)."""
        return tuple(self.load_image(sample).shape[:2])

    def load_mask(self, sample: Sample) -> np.ndarray:
        """Return the sample's ground-truth mask as HxW bool; raise :class:`DataError`."""
        raise NotImplementedError

    def load_checked(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Load image and mask; raise :class:`DataError` if either fails or their sizes differ."""
        image = self.load_image(sample)
        mask = self.load_mask(sample)
        if mask.shape != image.shape[:2]:
            raise DataError(
                f"mask of {sample.sample_id} is {mask.shape[0]}x{mask.shape[1]} but image "
                f"{sample.image_path} is {image.shape[0]}x{image.shape[1]}"
            )
        return image, mask

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray] | None:
        """Load image and mask under the error policy: ``None`` when the sample is skipped."""
        try:
            return self.load_checked(sample)
        except DataError as exc:
            self.problem("unloadable samples", str(exc))
            return None

    def __repr__(self) -> str:
        """Show the dataset, split, root and size."""
        return (f"{type(self).__name__}({self.split!r}, root={str(self.root)!r}, "
                f"{len(self)} samples)")


def first_loadable(count: int, start: int, load: Callable[[int], Any], source: SampleSource,
                   on_error: str | None = None,
                   on_skip: Callable[[int, DataError], None] | None = None) -> Any:
    """Return ``load(i)`` for the first ``i`` from ``start`` on (cyclically) that loads.

    The one "skip to the next loadable item" loop of the torch datasets. A :class:`DataError`
    raises under ``on_error="raise"`` (default: the source's policy); else it is reported to
    ``on_skip(i, exc)`` (default: :meth:`SampleSource.problem`) and the next item is tried.
    """
    policy = on_error or source.on_error
    for step in range(count):
        index = (start + step) % count
        try:
            return load(index)
        except DataError as exc:
            if policy == "raise":
                raise
            if on_skip is not None:
                on_skip(index, exc)
            elif source.on_error == "skip":
                source.problem("unloadable samples", str(exc))
            else:
                log.warning("%s %s: skipping: %s", source.name, source.split, exc)
    raise DataError(f"no loadable sample in {source.name} {source.split} under {source.root}")


class RefSegDataset(Dataset):
    """Torch dataset of network inputs and labels built from a :class:`SampleSource`.

    Each item is a dict: ``image`` (3xSxS float32, letterboxed and mean-subtracted), ``tokens``
    (LongTensor of ``max_len`` ids), ``mask`` (SxS float32 for ``label="full"``, the
    ``S/stride x S/stride`` low-res label for ``label="coarse"``), ``valid`` (SxS float32, 1 on the
    image content, 0 on padding), ``sample_id`` and ``index``. With ``on_error="skip"`` a sample
    that fails to load is logged and the next one is returned instead.
    """

    def __init__(self, source: SampleSource, vocab: Vocabulary, input_size: int, *,
                 label: str = "full", stride: int = 32, on_error: str | None = None,
                 max_len: int = MAX_LEN, input_height: int | None = None,
                 input_shape_for: Callable[[int, int], tuple[int, int]] | None = None,
                 photometric: bool = False, seed: int = 0,
                 exposure: ExposureDraw = ExposureDraw()):
        """Wrap ``source``; ``on_error`` defaults to the source's own policy.

        The network input is ``input_size`` wide and ``input_height`` (default: ``input_size``)
        high, or ``input_shape_for(image_height, image_width)`` per image when given (an input of
        each image's aspect: batch images of one shape together). ``photometric`` applies
        :func:`refseg_model.augment.photometric` to every image (training only), its exposure
        gains drawn by ``exposure``.
        """
        if label not in ("full", "coarse"):
            raise ValueError(f"label must be 'full' or 'coarse', got {label!r}")
        if on_error is not None and on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        input_height = input_height or input_size
        if input_size % stride or input_height % stride:
            raise ValueError(f"input {input_height}x{input_size} must be a multiple of stride "
                             f"{stride}")
        if len(source) == 0:
            raise DataError(f"no samples in {source.name} split {source.split!r} "
                            f"under {source.root}")
        self.source = source
        self.vocab = vocab
        self.input_size = input_size
        self.input_height = input_height
        self.label = label
        self.stride = stride
        self.on_error = on_error or source.on_error
        self.max_len = max_len
        self.input_shape_for = input_shape_for
        self.photometric = photometric
        self.exposure = exposure
        self._seed = int(seed)
        self._rngs: dict[int, np.random.Generator] = {}
        self.skipped = 0

    def __len__(self) -> int:
        """Return the number of samples of the source."""
        return len(self.source)

    def _load(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        def load(actual: int) -> tuple[int, np.ndarray, np.ndarray]:
            return (actual, *self.source.load_checked(self.source.samples[actual]))

        def skipped(actual: int, exc: DataError) -> None:
            self.skipped += 1
            if self.skipped <= MAX_LOGGED_PROBLEMS:
                log.warning("skipping sample %s: %s", self.source.samples[actual].sample_id, exc)

        return first_loadable(len(self.source), index, load, self.source, self.on_error, skipped)

    def _augment_rng(self) -> np.random.Generator:
        """Return this loader worker's generator (each worker draws its own augmentations)."""
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else -1
        if worker not in self._rngs:
            self._rngs[worker] = np.random.default_rng([self._seed, 7919, worker + 1])
        return self._rngs[worker]

    def __getitem__(self, index: int) -> dict:
        """Return the preprocessed sample ``index`` (or the next loadable one when skipping)."""
        index, image, mask = self._load(index)
        sample = self.source.samples[index]
        height, width = self.input_height, self.input_size
        if self.input_shape_for is not None:
            height, width = self.input_shape_for(*image.shape[:2])
            if width % self.stride or height % self.stride:
                raise ValueError(f"input {height}x{width} for {sample.sample_id} is not a "
                                 f"multiple of stride {self.stride}")
        if self.photometric:
            image = photometric(image, self._augment_rng(), self.exposure)
        boxed, meta = letterbox(image, width, height)
        full = letterbox_mask(mask, width, height)
        target = coarse_labels(full, self.stride) if self.label == "coarse" else full
        return {
            "image": torch.from_numpy(normalize(boxed)),
            "tokens": torch.tensor(self.vocab.encode(sample.expression, self.max_len),
                                   dtype=torch.long),
            "mask": torch.from_numpy(target.astype(np.float32)),
            "valid": torch.from_numpy(meta.valid().astype(np.float32)),
            "sample_id": sample.sample_id,
            "image_id": sample.image_id,
            "index": index,
        }
