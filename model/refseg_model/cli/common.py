"""What every ``refseg-*`` command shares: the dataset options, and where progress goes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
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


class _ProgressHandler(logging.Handler):
    """Writes ``prog: message`` lines to the current ``sys.stdout`` (warnings: ``sys.stderr``)."""

    def __init__(self, prog: str) -> None:
        super().__init__(logging.INFO)
        self.prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        try:
            info = record.levelno <= logging.INFO
            stream = sys.stdout if info else sys.stderr
            level = "" if info else f"{record.levelname.lower()}: "
            stream.write(f"{self.prog}: {level}{record.getMessage()}\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own policy: report, never raise
            self.handleError(record)


@contextlib.contextmanager
def report_progress(prog: str) -> Iterator[None]:
    """Print the ``refseg_model`` loggers' records of INFO and up while it lasts.

    Lines read ``prog: message`` on stdout, ``prog: warning: ...`` (and errors) on stderr: the
    one way a command reports its progress. The logger is as it was afterwards.
    """
    logger = logging.getLogger("refseg_model")
    handler, level = _ProgressHandler(prog), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
