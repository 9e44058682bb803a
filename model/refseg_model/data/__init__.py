"""Dataset readers: ReferIt (released-code layout), the ``refer`` toolkit layout, synthetic."""

from __future__ import annotations

import os

from refseg_model.data.base import DataError, RefSegDataset, Sample, SampleSource, read_rgb

DATASETS = ("referit", "refer", "synthetic")

__all__ = ["DATASETS", "DataError", "RefSegDataset", "Sample", "SampleSource", "open_source",
           "read_rgb"]


def open_source(name: str, root: str | os.PathLike, split: str, on_error: str = "skip",
                **kw) -> SampleSource:
    """Open split ``split`` of dataset layout ``name`` (one of :data:`DATASETS`) under ``root``.

    Extra keywords go to the reader (``refer``: ``dataset``, ``split_by``, ``image_dir``).
    """
    if name == "referit":
        from refseg_model.data.referit import ReferItSource

        return ReferItSource(root, split, on_error=on_error, **kw)
    if name == "refer":
        from refseg_model.data.refer import ReferSource

        return ReferSource(root, split, on_error=on_error, **kw)
    if name == "synthetic":
        from refseg_model.data.synthetic import SyntheticSource

        return SyntheticSource(root, split, on_error=on_error, **kw)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
