"""A training run's state on disk: what :func:`refseg_model.train.train` writes and resumes from.

:class:`Checkpointer` writes the run's checkpoints: ``last.pt`` with the full training state
(weights, optimizer, stage and step, the stage's clock, RNG states, the run's configuration,
the best validation score), ``best.pt`` (the weights of the best validation overall IoU) and
``det.pt`` / ``lowres.pt`` (the weights at the end of those stages). :class:`ResumeState` is
where a run starts: read back from ``last.pt`` by ``--resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, make_payload, save_checkpoint, save_inference_checkpoint
from .config import TRAIN_STAGES, TrainConfig
from .ddp import DistInfo, barrier
from .rng import rng_state
from .run_files import RunFiles

STAGE_CHECKPOINTS = ("det", "lowres")  # stages whose final weights get a file of their own


@dataclass
class ResumeState:
    """Where a run (re)starts: a stage, the steps of it already done, and what they carry.

    Attributes:
        stage_index: Index, in the run's list of stages, of the stage to (re)start.
        step: Steps of that stage already done.
        optimizer: The optimizer's state dict (``None``: a fresh optimizer).
        elapsed_s: Seconds of that stage already trained (a time budget's clock).
        best_val: Best validation overall IoU so far (``None``: none yet).
        fresh_model: The weights were just initialised (the det stage then applies the
            released initialisation).
        weights_from: The stage the weights were trained in (``None``: none).
    """

    stage_index: int = 0
    step: int = 0
    optimizer: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    best_val: float | None = None
    fresh_model: bool = False
    weights_from: str | None = None

    @property
    def mid_stage(self) -> bool:
        """Whether the run starts inside a stage (not at its beginning)."""
        return self.step > 0

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], stages: list[str], tcfg: TrainConfig,
                        path: str | Path = "<checkpoint>") -> ResumeState:
        """Return where the run of ``payload`` (a ``last.pt``) continues among ``stages``.

        A checkpoint at the end of its stage continues with the next stage.
        """
        state = payload["train_state"]
        done = payload["stage"]
        if done not in stages:
            raise CheckpointError(f"--resume: {path} is at stage {done}, not in the stages "
                                  f"{stages} of this run")
        start = cls(stage_index=stages.index(done), step=int(state["step"]),
                    optimizer=state["optimizer"], elapsed_s=float(state.get("elapsed_s", 0.0)),
                    best_val=state.get("best_val"), weights_from=done)
        if start.step >= tcfg.stage_iters(done):
            return start.next_stage(done)
        return start

    def next_stage(self, done: str) -> ResumeState:
        """Return the start of the stage after ``done``, whose weights it continues from."""
        return ResumeState(stage_index=self.stage_index + 1, best_val=self.best_val,
                           weights_from=done)


class Checkpointer:
    """Writes a run's checkpoints (rank 0 writes; every rank waits until it has)."""

    def __init__(self, files: RunFiles, info: DistInfo, vocabulary: list[str],
                 run_config: TrainConfig, best_val: float | None = None) -> None:
        """Write into ``files.dir``; ``run_config`` (with its per-stage overrides) is stored."""
        self.files = files
        self.info = info
        self.vocabulary = list(vocabulary)
        self.run_config = run_config
        self.best_val = best_val

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, stage: str,
             step: int, *, elapsed_s: float, stage_end: bool,
             val: dict[str, float] | None = None) -> None:
        """Write ``last.pt`` (and ``best.pt`` when ``val`` improves, ``<stage>.pt`` at its end).

        Also flushes the pending metrics and redraws the loss curve.
        """
        self.files.flush_metrics()
        if self.info.is_main:
            improved = val is not None and (self.best_val is None
                                            or val["overall_iou"] > self.best_val)
            if improved:
                self.best_val = val["overall_iou"]
            state = {"stage_index": TRAIN_STAGES.index(stage), "step": step,
                     "optimizer": optimizer.state_dict(), "elapsed_s": elapsed_s,
                     "rng": rng_state(), "train_config": self.run_config.to_dict(),
                     "best_val": self.best_val, "world_size": self.info.world_size}
            net = getattr(model, "module", model)
            payload = make_payload(net, net.config, self.vocabulary, stage, state)
            save_checkpoint(payload, self.files.dir / "last.pt")
            if improved:
                save_inference_checkpoint(payload, self.files.dir / "best.pt")
            if stage_end and stage in STAGE_CHECKPOINTS:
                save_inference_checkpoint(payload, self.files.dir / f"{stage}.pt")
            self.files.write_loss_curve()
        barrier(self.info)

