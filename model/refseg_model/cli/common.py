"""Command-line options every ``refseg-*`` command shares: the dataset it reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from refseg_model.data import DATASETS, REFER_DATASETS, DataSpec


def add_data_arguments(parser: argparse.ArgumentParser, *, split: str,
                       dataset: str | None = None) -> None:
    """Add the data options to ``parser`` (``--split`` defaults to ``split``).

    ``--dataset`` is required unless ``dataset`` gives its default.

    ``--dataset``, ``--data-root``, ``--split``, ``--on-error``, and the ``refer`` layout's
    ``--refer-dataset``, ``--split-by`` and ``--image-dir``.
    """
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", required=dataset is None, default=dataset, choices=DATASETS,
                       help="dataset layout" + (f" (default: {dataset})" if dataset else ""))
    group.add_argument("--data-root", required=True, type=Path, help="dataset folder")
    group.add_argument("--split", default=split, help=f"split (default: {split})")
    group.add_argument("--on-error", default="skip", choices=("skip", "raise"),
                       help="bad samples: skip them (logged, counted) or stop (default: skip)")
    group.add_argument("--refer-dataset", default="refcoco", choices=REFER_DATASETS,
                       help="refer layout: the dataset folder (default: refcoco)")
    group.add_argument("--split-by", default=None,
                       help="refer layout: refs(<split_by>).p (default: umd for refcocog, else "
                            "unc)")
    group.add_argument("--image-dir", type=Path, default=None,
                       help="refer layout: image folder override")


def data_spec(args: argparse.Namespace) -> DataSpec:
    """Return the :class:`DataSpec` of parsed :func:`add_data_arguments` options."""
    return DataSpec(args.dataset, Path(args.data_root), args.split, args.on_error,
                    args.refer_dataset, args.split_by, args.image_dir)
