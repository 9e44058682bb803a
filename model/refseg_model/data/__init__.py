"""Dataset readers: ReferIt (released-code layout), the ``refer`` toolkit layout, synthetic."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from refseg_model.data.base import DataError, RefSegDataset, Sample, SampleSource, read_rgb
from refseg_model.data.refer import ReferSource
from refseg_model.data.referit import ReferItSource
from refseg_model.data.synthetic import SyntheticSource

DATASETS = ("referit", "refer", "synthetic")
REFER_DATASETS = ("refclef", "refcoco", "refcoco+", "refcocog")

__all__ = ["DATASETS", "REFER_DATASETS", "DataError", "DataSpec", "RefSegDataset", "Sample",
           "SampleSource", "open_source", "read_rgb"]


@dataclass(frozen=True)
class DataSpec:
    """Which data a command reads: layout, root, split, error policy and the ``refer`` options.

    ``refer_dataset``, ``split_by`` and ``image_dir`` apply to the ``refer`` layout only.
    """

    dataset: str
    root: Path
    split: str = "train"
    on_error: str = "skip"
    refer_dataset: str = "refcoco"
    split_by: str | None = None
    image_dir: Path | None = None

    def open(self, split: str | None = None) -> SampleSource:
        """Open ``split`` (default: this spec's split) as a :class:`SampleSource`."""
        kw = {}
        if self.dataset == "refer":
            kw = {"dataset": self.refer_dataset, "split_by": self.split_by,
                  "image_dir": self.image_dir}
        return open_source(self.dataset, self.root, split or self.split, self.on_error, **kw)

    def describe(self, split: str | None = None) -> str:
        """Return e.g. ``refer/refcoco+ train`` for messages."""
        name = f"refer/{self.refer_dataset}" if self.dataset == "refer" else self.dataset
        return f"{name} {split or self.split}"


def open_source(name: str, root: str | os.PathLike, split: str, on_error: str = "skip",
                **kw) -> SampleSource:
    """Open split ``split`` of dataset layout ``name`` (one of :data:`DATASETS`) under ``root``.

    Extra keywords go to the reader (``refer``: ``dataset``, ``split_by``, ``image_dir``).
    """
    if name == "referit":
        return ReferItSource(root, split, on_error=on_error, **kw)
    if name == "refer":
        return ReferSource(root, split, on_error=on_error, **kw)
    if name == "synthetic":
        return SyntheticSource(root, split, on_error=on_error, **kw)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
