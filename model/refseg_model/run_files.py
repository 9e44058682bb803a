"""The files of a training run folder: ``metrics.jsonl`` and ``loss_curve.png``.

``metrics.jsonl`` holds one JSON record per logged step (``stage``, ``step``, ``loss``, ``lr``,
...) or validation (``val_overall_iou``...). Only rank 0 of a data-parallel run writes; the
methods are no-ops elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .config import TRAIN_STAGES
from .ddp import DistInfo
from .fileio import atomic_open, atomic_write

FLUSH_EVERY = 50  # queued metrics records written at once (and at every checkpoint)


class RunFiles:
    """The files of a run folder; methods are no-ops on ranks other than 0."""

    def __init__(self, run_dir: str | Path, info: DistInfo) -> None:
        """Create the folder (rank 0)."""
        self.dir = Path(run_dir)
        self.info = info
        self.metrics = self.dir / "metrics.jsonl"
        self._pending: list[dict[str, Any]] = []
        if info.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)

    def add_metrics(self, record: dict[str, Any]) -> None:
        """Queue one record; the queue is written every ``FLUSH_EVERY`` records and on flush."""
        self._pending.append(record)
        if len(self._pending) >= FLUSH_EVERY:
            self.flush_metrics()

    def flush_metrics(self) -> None:
        """Append the queued records to ``metrics.jsonl``, one JSON line each."""
        records, self._pending = self._pending, []
        if not self.info.is_main or not records:
            return
        with open(self.metrics, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in records))
            handle.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        """Return the records of ``metrics.jsonl`` (a torn last line is ignored)."""
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return records

    def truncate_metrics(self, stage_index: int, step: int) -> None:
        """Drop records written after the checkpoint a resumed run starts from.

        ``stage_index`` is the stage's index in ``TRAIN_STAGES``.
        """
        if not self.info.is_main:
            return
        end = (stage_index, step)
        kept = [r for r in self.read_metrics()
                if (TRAIN_STAGES.index(r.get("stage", "lowres")), r.get("step", 0)) <= end]
        atomic_write(self.metrics, "".join(json.dumps(r) + "\n" for r in kept))

    def write_loss_curve(self) -> None:
        """Plot the loss of every step (every stage) to ``loss_curve.png``."""
        if not self.info.is_main:
            return
        records = [r for r in self.read_metrics() if "loss" in r]
        if records:
            plot_loss_curve(records, self.dir / "loss_curve.png")


def plot_loss_curve(records: list[dict[str, Any]], path: str | Path) -> None:
    """Plot the ``loss`` of ``records`` stage after stage (raw and a running mean) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for stage in TRAIN_STAGES:
        rows = [r for r in records if r["stage"] == stage]
        if not rows:
            continue
        steps = np.array([r["step"] for r in rows]) + offset
        losses = np.array([r["loss"] for r in rows])
        ax.plot(steps, losses, lw=0.6, alpha=0.4, label=f"{stage} loss")
        window = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.5, label=f"{stage} (mean of {window})")
        offset = steps[-1]
    ax.set_xlabel("iteration")
    ax.set_ylabel("weighted logistic loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_open(path) as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
