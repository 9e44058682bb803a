"""Staged training (Sec. 3.3 of the paper; the released code's recipe): det, lowres, highres.

Stage ``det`` (optional, the released code's first stage; see ``refseg_model.detection``) trains
the text encoder and classifier on box crops. Stage ``lowres`` trains on the coarse labels (a
response-map cell is foreground if any of its pixels is); stage ``highres`` starts from the
low-resolution weights, adds the deconvolution (bilinear-initialised) and trains on
full-resolution labels. Each stage starts from the weights the previous one ended with; its
settings are ``TrainConfig.for_stage(stage)`` (per-stage loss weights, schedule, frozen layers).
SGD with momentum, weight decay on weights only, staircase learning-rate decay restarting at each
stage.

A run folder holds ``config.yaml`` (resolved configuration), ``metrics.jsonl`` (one JSON line
per step), ``loss_curve.png``, ``last.pt`` (every ``checkpoint_every`` steps and at the end of
each stage, with the full training state), ``det.pt`` / ``lowres.pt`` (weights at the end of
those stages) and ``best.pt`` (best validation overall IoU, when a validation split is given).
``resume`` continues from ``last.pt`` exactly: same stage and step, optimizer state, RNG
states, and the same data order (fixed by seed and epoch).

The entry point is :func:`train` (typed: a ``RunConfig``, a ``DataSpec``, a run folder and
``TrainOptions``); ``refseg-train`` only parses its command line into those.

Launched by ``torchrun``, training is data parallel (``gloo`` on CPU, ``nccl`` on CUDA);
``batch_size`` is per process and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    make_payload,
    model_config_of,
    model_from_checkpoint,
    save_checkpoint,
    save_inference_checkpoint,
)
from .config import (
    STAGES,
    TRAIN_STAGES,
    ConfigError,
    ModelConfig,
    RunConfig,
    TrainConfig,
    save_config,
)
from .data import RefSegDataset
from .ddp import (
    DistInfo,
    GroupedBatchSampler,
    ResumableBatchSampler,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    setup_distributed,
)
from .detection import BoxDataset, RegionScorer, released_det_init
from .evaluate import evaluate
from .fastpath import cpu_bf16_kind
from .fileio import atomic_open, atomic_write
from .inference import Segmenter, resolve_device
from .loss import soft_dice_loss, weighted_logistic_loss
from .network import build_model, parameter_groups
from .text import Vocabulary

log = logging.getLogger("refseg_model.train")


# -- data ------------------------------------------------------------------------------------
def build_vocabulary(train_source, resumed: list[str] | None = None,
                     vocab_file: str | Path | None = None):
    """Return the vocabulary: the resumed checkpoint's, ``vocab_file``'s, or the train split's."""
    if resumed is not None:
        return Vocabulary.from_list(resumed)
    if vocab_file:
        return Vocabulary.from_file(vocab_file)
    return Vocabulary.build(train_source.expressions())


def build_dataset(cfg: ModelConfig, tcfg: TrainConfig, stage: str, vocab, source):
    """Return the training dataset of ``stage``: box crops (``det``), coarse or full labels."""
    if stage == "det":
        return BoxDataset(source, vocab, cfg, tcfg, seed=tcfg.seed)
    label = "coarse" if stage == "lowres" else "full"
    return RefSegDataset(source, vocab, cfg.input_size, label=label, stride=cfg.stride,
                         max_len=cfg.max_len, input_height=cfg.input_h,
                         input_shape_for=cfg.input_shape_for if cfg.keep_aspect else None,
                         photometric=tcfg.photometric, seed=tcfg.seed)


def kind_weights(dataset, tcfg: TrainConfig) -> list[float] | None:
    """Return each sample's draw weight by expression kind (``tcfg.kind_weights``), or None."""
    if not tcfg.kind_weights or not dataset.source.has_expression_kinds():
        return None
    kinds = [dataset.source.expression_kind(s) for s in dataset.source.samples]
    return [float(tcfg.kind_weights.get(k.kind, 1.0)) if k is not None else 1.0 for k in kinds]


def shape_buckets(dataset, groups: list[list[int]]) -> list[int] | None:
    """Return one bucket per image (its network input shape) when inputs follow the aspect."""
    if getattr(dataset, "input_shape_for", None) is None:
        return None
    shapes: dict[tuple, int] = {}
    buckets = []
    for group in groups:
        height, width = dataset.source.image_size(dataset.source.samples[group[0]])
        shape = dataset.input_shape_for(height, width)
        buckets.append(shapes.setdefault(shape, len(shapes)))
    return buckets if len(shapes) > 1 else None


def make_loader(dataset, tcfg: TrainConfig, info: DistInfo, start_step: int) -> DataLoader:
    """Return an endless loader whose batch order depends only on (seed, epoch, step).

    With ``expressions_per_image`` > 1 each batch groups that many samples of each image.
    """
    per_image = tcfg.expressions_per_image
    if per_image > 1:
        by_image: dict[str, list[int]] = {}
        for index, sample in enumerate(dataset.source.samples):
            by_image.setdefault(sample.image_id, []).append(index)
        groups = list(by_image.values())
        sampler = GroupedBatchSampler(groups, tcfg.batch_size // per_image,
                                      per_image, tcfg.seed, info.rank, info.world_size,
                                      start_step, weights=kind_weights(dataset, tcfg),
                                      buckets=shape_buckets(dataset, groups))
    else:
        sampler = ResumableBatchSampler(len(dataset), tcfg.batch_size, tcfg.seed, info.rank,
                                        info.world_size, start_step)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=tcfg.workers,
                      pin_memory=info.device.type == "cuda",
                      persistent_workers=False)


# -- optimisation ----------------------------------------------------------------------------
def criterion(logits: torch.Tensor, labels: torch.Tensor, tcfg: TrainConfig) -> torch.Tensor:
    """Return the paper's weighted logistic loss (+ ``dice_weight`` x the soft Dice loss).

    Foreground pixels weigh ``w_fg``, background ``w_bg``; ``dice_weight`` is 0 in ``paper``.
    """
    loss = weighted_logistic_loss(logits, labels, tcfg.w_fg, tcfg.w_bg)
    if tcfg.dice_weight:
        loss = loss + tcfg.dice_weight * soft_dice_loss(logits, labels)
    return loss


def learning_rate_factor(tcfg: TrainConfig, step: int, total: int | None = None,
                         fraction: float | None = None) -> float:
    """Return the learning-rate factor at ``step`` (0-based) of a stage of ``total`` steps.

    A linear warm-up over ``warmup_iters``, then the staircase decay (``schedule: step``) or a
    cosine from 1 to 0 over the rest of the stage (``schedule: cosine``, needs ``total``, or
    ``fraction``: the part of a time budget used so far).
    """
    if step < tcfg.warmup_iters:
        return (step + 1) / tcfg.warmup_iters
    if tcfg.schedule == "cosine":
        if fraction is None:
            if total is None:
                raise ValueError("schedule cosine needs the stage's total number of steps")
            fraction = (step - tcfg.warmup_iters) / max(1, total - tcfg.warmup_iters)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, fraction))))
    return tcfg.lr_decay_rate ** (step // tcfg.lr_decay_step)


def make_optimizer(model: torch.nn.Module, tcfg: TrainConfig) -> torch.optim.Optimizer:
    """Return SGD with momentum or AdamW (``tcfg.optimizer``); weight decay on weights only."""
    groups = parameter_groups(model, tcfg.weight_decay, tcfg.backbone_lr_mult, tcfg.lr,
                              embedding_decay=tcfg.embedding_weight_decay)
    if tcfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=tcfg.lr)
    return torch.optim.SGD(groups, lr=tcfg.lr, momentum=tcfg.momentum)


def training_precision(precision: str, device: torch.device) -> str:
    """Resolve ``TrainConfig.precision`` for ``device``: ``fp32``, ``bf16`` or ``fp16``.

    ``auto`` is bf16 on CUDA (fp16 where the GPU lacks bf16) and on CPUs with AMX tiles,
    float32 elsewhere. On a CPU with AVX-512 BF16 but no AMX, oneDNN's bf16 convolution
    *backward* measured 2.7x slower than float32 (Intel Xeon, 2 cores, 2026-12-01: the
    default's training step 0.79 s fp32 against 2.1 s bf16), and emulated bf16 (AVX2 only) is
    slower still, so training stays float32 there (inference, forward only, is another matter:
    ``refseg_model.fastpath``).
    """
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device; on a CPU use bf16 or fp32")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16_kind() == "amx" else "fp32"


def autocast_context(precision: str, device: torch.device):
    """Return the autocast context of a resolved training ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def unique_images(image_ids: list[str]) -> tuple[list[int], torch.Tensor]:
    """Return the batch rows of each distinct image (first occurrence) and each row's image.

    ``images[rows][image_index]`` equals ``images``: the backbone runs on ``images[rows]``.
    """
    slots: dict[str, int] = {}
    rows: list[int] = []
    index = []
    for row, image_id in enumerate(image_ids):
        if image_id not in slots:
            slots[image_id] = len(rows)
            rows.append(row)
        index.append(slots[image_id])
    return rows, torch.tensor(index, dtype=torch.long)


def coarse_targets(labels: torch.Tensor, stride: int) -> torch.Tensor:
    """Return the coarse labels of full-resolution ``labels`` (B x H x W): any pixel = 1."""
    return F.max_pool2d(labels.unsqueeze(1), kernel_size=stride, stride=stride,
                        ceil_mode=True).squeeze(1)


def rng_state() -> dict[str, Any]:
    """Return the Python, NumPy and torch RNG states as tensors and JSON-able values."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state({"bit_generator": npy["bit_generator"],
                         "state": {"key": npy["key"].numpy().astype(np.uint32),
                                   "pos": npy["pos"]},
                         "has_gauss": npy["has_gauss"], "gauss": npy["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- run folder ------------------------------------------------------------------------------
class RunFiles:
    """The files of a run folder; methods are no-ops on ranks other than 0."""

    def __init__(self, run_dir: str | Path, info: DistInfo) -> None:
        """Create the folder (rank 0)."""
        self.dir = Path(run_dir)
        self.info = info
        self.metrics = self.dir / "metrics.jsonl"
        if info.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)

    def append_metrics(self, records: list[dict[str, Any]]) -> None:
        """Append one JSON line per record."""
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
        """Drop records written after the checkpoint a resumed run starts from."""
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
        if not records:
            return
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
        with atomic_open(self.dir / "loss_curve.png") as handle:
            fig.savefig(handle, format="png", dpi=100)
        plt.close(fig)


# -- evaluation ------------------------------------------------------------------------------
def evaluate_hook(model: torch.nn.Module, cfg: ModelConfig, vocab, stage: str, source,
                  device: torch.device, max_samples: int = 0) -> dict[str, float]:
    """Return the validation metrics (``overall_iou``, ``mean_iou``, ``prec@...``) of ``model``.

    Predictions go through the inference path (``Segmenter``, original image size) and are
    scored by ``refseg_model.evaluate.evaluate``, so validation sees exactly what users will:
    the numeric path this device serves with (bf16 on a CPU with AVX-512 BF16), uncompiled.
    ``Segmenter`` converts the weights it is given to that path in place, so it gets a copy:
    the model in training keeps its float32 weights and memory format.
    """
    module = getattr(model, "module", model)
    segmenter = Segmenter(copy.deepcopy(module), vocab, cfg, stage=stage, device=device,
                          compile="off")
    return evaluate(lambda image, expression: segmenter.predict(image, expression).mask,
                    source, progress=False, limit=max_samples or None)


# -- one stage -------------------------------------------------------------------------------
def train_step(module: torch.nn.Module, model: torch.nn.Module, batch: dict,
               optimizer: torch.optim.Optimizer, cfg: ModelConfig, tcfg: TrainConfig, stage: str,
               precision: str, aux: bool, device: torch.device,
               memory_format: torch.memory_format, step: int = 0) -> tuple[torch.Tensor, int]:
    """Run one optimisation step of ``stage`` on ``batch``; return (loss, samples in the batch).

    The body of the training loop, also timed by ``bench/train_bench.py``: one backbone pass per
    distinct image of grouped batches (``image_index``), detection crops' box features, the
    numeric path's autocast, the stage's loss plus deep supervision of the coarse map (``aux``),
    gradient clipping. ``module`` is what runs forward (DDP wrapper or the model), ``model`` the
    bare network; ``step`` only labels the error of a non-finite loss.
    """
    extra: dict[str, Any] = {}
    rows = slice(None)
    if "spatial" in batch:  # detection crops: box features, one crop per sample
        extra["spatial"] = batch["spatial"].to(device)
    elif "image_id" in batch:  # several expressions of one image: one backbone pass
        rows, image_index = unique_images(list(batch["image_id"]))
        if len(rows) < len(image_index):
            extra["image_index"] = image_index.to(device)
    if aux:
        extra["return_coarse"] = True
    images = batch["image"][rows].to(device, non_blocking=True).contiguous(
        memory_format=memory_format)
    tokens = batch["tokens"].to(device, non_blocking=True)
    labels = batch["mask"].to(device, non_blocking=True)
    with autocast_context(precision, device):
        output = module(images, tokens, stage=stage, **extra)
    logits, coarse = output if aux else (output, None)
    loss = criterion(logits.float(), labels, tcfg)
    if coarse is not None:
        loss = loss + tcfg.aux_weight * weighted_logistic_loss(
            coarse.float(), coarse_targets(labels, cfg.stride), tcfg.w_fg, tcfg.w_bg)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{stage} step {step}: loss is {loss.item()}; lower "
                                 "--lr or enable grad_clip")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if tcfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
    optimizer.step()
    return loss.detach(), int(tokens.shape[0])


def train_one_stage(model: torch.nn.Module, stage: str, dataset, tcfg: TrainConfig,
                    cfg: ModelConfig, vocab, files: RunFiles, info: DistInfo, *,
                    start_step: int = 0, optimizer_state: dict | None = None,
                    start_elapsed: float = 0.0,
                    best_val: float | None = None, val_source=None,
                    stage_index: int = 0, run_config: TrainConfig | None = None
                    ) -> float | None:
    """Train ``model`` for the iterations of ``stage``, writing checkpoints; return best val IoU.

    ``tcfg`` is the stage's resolved configuration (``TrainConfig.for_stage``); ``run_config``,
    the run's own (with its per-stage overrides), is what checkpoints store for ``resume``.
    """
    total = tcfg.stage_iters(stage)
    module = model
    if stage == "det":  # box crops through the same weights (refseg_model.detection)

        module = RegionScorer(model)
    if info.distributed:
        module = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=stage != "highres")
    optimizer = make_optimizer(model, tcfg)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    model.train()
    memory_format = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)  # NHWC: oneDNN's fast convolutions on CPU
    loader = make_loader(dataset, tcfg, info, start_step)
    batches = iter(loader)
    progress = tqdm(total=total, initial=start_step, desc=f"{stage}", disable=not info.is_main,
                    dynamic_ncols=True, smoothing=0.1)
    pending: list[dict[str, Any]] = []

    def save(step: int) -> None:
        nonlocal best_val
        val = None
        due = not tcfg.val_every or step % tcfg.val_every == 0 or step == total
        if val_source is not None and info.is_main and due:
            val = evaluate_hook(model, cfg, vocab, stage, val_source, info.device,
                                tcfg.val_max_samples)
            pending.append({"stage": stage, "step": step,
                            **{f"val_{k}": v for k, v in val.items()}})
            progress.write(f"[{stage} {step}/{total}] val overall IoU {val['overall_iou']:.4f} "
                           f"mean IoU {val['mean_iou']:.4f} ({val['num_samples']} samples)")
        files.append_metrics(pending)
        pending.clear()
        if info.is_main:
            improved = val is not None and (best_val is None or val["overall_iou"] > best_val)
            if improved:
                best_val = val["overall_iou"]
            state = {"stage_index": stage_index, "step": step, "optimizer": optimizer.state_dict(),
                     "elapsed_s": time.perf_counter() - started,
                     "rng": rng_state(), "train_config": (run_config or tcfg).to_dict(),
                     "best_val": best_val,
                     "world_size": info.world_size}
            payload = make_payload(model, cfg, vocab.to_list(), stage, state)
            save_checkpoint(payload, files.dir / "last.pt")
            if improved:
                save_inference_checkpoint(payload, files.dir / "best.pt")
            if step == total and stage in ("det", "lowres"):
                save_inference_checkpoint(payload, files.dir / f"{stage}.pt")
            files.write_loss_curve()
        barrier(info)

    precision = training_precision(tcfg.precision, info.device)
    aux = stage == "highres" and tcfg.aux_weight > 0
    if info.is_main and start_step < total:
        progress.write(f"[{stage}] numeric path: {precision} (precision {tcfg.precision!r} on "
                       f"{info.device.type}), optimizer {tcfg.optimizer}, schedule "
                       f"{tcfg.schedule}")
    step = start_step
    tick = time.perf_counter()
    started = tick - start_elapsed  # a resumed time-budgeted stage keeps its clock
    budget = tcfg.time_budget_s
    while step < total:
        fraction = (time.perf_counter() - started) / budget if budget else None
        if fraction is not None and fraction >= 1.0:
            progress.write(f"[{stage}] time budget of {budget:.0f} s used up at step {step}")
            total = step
            save(step)
            break
        batch = next(batches)
        factor = learning_rate_factor(tcfg, step, total, fraction)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        loss, samples = train_step(module, model, batch, optimizer, cfg, tcfg, stage, precision,
                                   aux, info.device, memory_format, step=step + 1)
        step += 1
        now = time.perf_counter()
        loss_value = all_reduce_mean(float(loss.item()), info)
        img_per_s = samples * info.world_size / max(now - tick, 1e-9)
        tick = now
        if step % tcfg.log_every == 0 or step == total:
            pending.append({"stage": stage, "step": step, "loss": loss_value,
                            "elapsed_s": round(time.perf_counter() - started, 2),
                            "lr": tcfg.lr * factor, "img_per_s": round(img_per_s, 2),
                            "time": time.time()})
        progress.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{img_per_s:.1f}")
        progress.update(1)
        if step == total or (tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0):
            save(step)
        elif len(pending) >= 50:
            files.append_metrics(pending)
            pending.clear()
    progress.close()
    return best_val


# -- stages --------------------------------------------------------------------------------
STAGE_CHOICES = ("det", "lowres", "highres", "both", "all")


def stages_of(stage_arg: str) -> list[str]:
    """Return the stages a ``--stage`` value runs (``both``: lowres, highres; ``all``: + det)."""
    if stage_arg == "both":
        return list(STAGES)
    if stage_arg == "all":
        return list(TRAIN_STAGES)
    if stage_arg not in TRAIN_STAGES:
        raise ConfigError(f"unknown stage {stage_arg!r}; choose one of {STAGE_CHOICES}")
    return [stage_arg]


def set_head_trainable(model: torch.nn.Module, trainable: bool) -> None:
    """Train or fix the backbone's head (fc6-fc8 of VGG-16); the frozen body stays frozen."""
    for param in model.backbone.head.parameters():
        param.requires_grad_(trainable)


def begin_stage(model: torch.nn.Module, stage: str, tcfg: TrainConfig, *, fresh_model: bool,
                weights_from: str | None) -> None:
    """Set ``model`` up for ``stage`` as the released code does before each of its stages.

    Always: the head is fixed or trained per ``tcfg.freeze_head``. At the start of a stage (not
    when resuming inside it): ``det`` on a freshly built model gets the released initialisation
    of the text encoder and classifier (``det_released_init``); ``highres`` after ``det`` /
    ``lowres`` weights gets the deconvolution reset to bilinear upsampling
    (``init_referit_seg_highres_from_lowres.py``). Everything else carries over unchanged
    (``init_referit_seg_lowres_from_det.py`` copies every variable).
    """
    set_head_trainable(model, not tcfg.freeze_head)
    if stage == "det" and fresh_model and tcfg.det_released_init:
        released_det_init(model, torch.Generator().manual_seed(tcfg.seed))
    if stage == "highres" and weights_from in ("det", "lowres"):
        model.upsample.reset_parameters()


# -- entry point -----------------------------------------------------------------------------
@dataclass
class TrainOptions:
    """How :func:`train` runs, apart from the configuration and the data.

    Attributes:
        stage: One of ``STAGE_CHOICES`` (``both``: lowres then highres; ``all``: det first).
        resume: Continue exactly from ``<out_dir>/last.pt``.
        init: Checkpoint to start from (e.g. ``RUN_DIR/det.pt`` for ``stage="lowres"``).
        val_split: Validation split (overall IoU at each checkpoint, ``best.pt``).
        vocab: Vocabulary file (default: built from the training expressions).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        threads: torch CPU threads (``None``: torch's default).
        iters: Iterations per stage name; these win over the configuration, a resumed one too.
    """

    stage: str = "both"
    resume: bool = False
    init: str | Path | None = None
    val_split: str | None = None
    vocab: str | Path | None = None
    device: str = "auto"
    threads: int | None = None
    iters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What a finished :func:`train` left: the run folder, ``last.pt`` and the best val IoU."""

    run_dir: Path
    last: Path
    best_val: float | None


def train(run: RunConfig, data, out_dir: str | Path,
          options: TrainOptions | None = None) -> TrainResult:
    """Train ``run`` on ``data`` (a ``refseg_model.data.DataSpec``) into the folder ``out_dir``."""
    options = options or TrainOptions()
    stages = stages_of(options.stage)
    for name in options.iters:
        if name not in TRAIN_STAGES:
            raise ConfigError(f"iterations for unknown stage {name!r}; stages: {TRAIN_STAGES}")
    if options.threads:
        torch.set_num_threads(options.threads)
    info = setup_distributed(resolve_device(options.device))
    try:
        return _train(run, data, out_dir, options, stages, info)
    finally:
        cleanup_distributed(info)


def _train(run: RunConfig, data, out_dir, options: TrainOptions, stages: list[str],
           info: DistInfo) -> TrainResult:
    files = RunFiles(out_dir, info)
    last = files.dir / "last.pt"
    resume_payload = None
    if options.resume:
        if not last.is_file():
            raise CheckpointError(f"--resume: no checkpoint {last} in the run folder {files.dir}")
        resume_payload = load_checkpoint(last)
        if not resume_payload.get("train_state"):
            raise CheckpointError(f"--resume: {last} has no training state")

    if resume_payload is not None:  # the stored configuration wins; iterations may be extended
        cfg = model_config_of(resume_payload, last)
        tcfg = TrainConfig.from_dict(dict(resume_payload["train_state"]["train_config"]))
        if resume_payload["train_state"].get("world_size", 1) != info.world_size:
            log.warning("resuming a run of %s process(es) on %s: the data order differs",
                        resume_payload["train_state"].get("world_size"), info.world_size)
    else:
        cfg, tcfg = run.model, run.train
    for name, iters in options.iters.items():
        setattr(tcfg, f"{name}_iters", int(iters))
    tcfg.__post_init__()
    seed_everything(tcfg.seed)

    train_source = data.open()
    vocab = build_vocabulary(train_source, resume_payload["vocabulary"]
                             if resume_payload is not None else None, options.vocab)
    cfg.vocab_size = len(vocab)
    val_source = None
    if options.val_split and info.is_main:
        val_source = data.open(options.val_split)

    # where to start
    start_stage, start_step, optimizer_state, best_val = 0, 0, None, None
    start_elapsed = 0.0
    fresh_model, weights_from = False, None
    if resume_payload is not None:
        state = resume_payload["train_state"]
        model = model_from_checkpoint(resume_payload, last)
        done_stage = resume_payload["stage"]
        if done_stage not in stages:
            raise CheckpointError(f"--resume: {last} is at stage {done_stage}, not in --stage "
                                  f"{options.stage}")
        start_stage, start_step = stages.index(done_stage), int(state["step"])
        optimizer_state, best_val = state["optimizer"], state.get("best_val")
        start_elapsed = float(state.get("elapsed_s", 0.0))
        set_rng_state(state["rng"])
        files.truncate_metrics(TRAIN_STAGES.index(done_stage), start_step)
        weights_from = done_stage
        if start_step >= tcfg.stage_iters(done_stage):
            start_stage, start_step, optimizer_state = start_stage + 1, 0, None
            start_elapsed = 0.0
    elif options.init:
        init_payload = load_checkpoint(options.init)
        model = model_from_checkpoint(init_payload, options.init)
        vocab = build_vocabulary(train_source, init_payload["vocabulary"])
        cfg = model_config_of(init_payload, options.init)
        cfg.vocab_size = len(vocab)
        weights_from = init_payload["stage"]
    else:
        if stages[0] == "highres":
            log.warning("stage highres without --init: starting from random initialisation")
        model = build_model(cfg)
        fresh_model = True
    model.to(info.device)

    if info.is_main:
        save_config(RunConfig(cfg, tcfg), files.dir / "config.yaml")
        print(f"refseg-train: {data.describe()} ({len(train_source)} samples, vocabulary "
              f"{len(vocab)} words), {cfg.backbone} {cfg.input_h}x{cfg.input_size}px, "
              f"stages "
              f"{stages[start_stage:]}, {info.world_size} process(es) on {info.device}, run "
              f"folder {files.dir}", flush=True)

    for index in range(start_stage, len(stages)):
        stage = stages[index]
        scfg = tcfg.for_stage(stage)
        begin_stage(model, stage, scfg, fresh_model=fresh_model and start_step == 0,
                    weights_from=weights_from if start_step == 0 else None)
        dataset = build_dataset(cfg, scfg, stage, vocab, train_source)
        if info.is_main and stage == "det":
            print(f"refseg-train: det stage: {dataset.note}", flush=True)
        best_val = train_one_stage(model, stage, dataset, scfg, cfg, vocab, files, info,
                                   start_step=start_step, optimizer_state=optimizer_state,
                                   start_elapsed=start_elapsed,
                                   best_val=best_val, val_source=val_source,
                                   stage_index=TRAIN_STAGES.index(stage), run_config=tcfg)
        start_step, optimizer_state, start_elapsed = 0, None, 0.0
        fresh_model, weights_from = False, stage
    set_head_trainable(model, True)
    if info.is_main:
        message = f"refseg-train: done; checkpoint {last}"
        if best_val is not None and not math.isnan(best_val):
            message += f", best val overall IoU {best_val:.4f} ({files.dir / 'best.pt'})"
        print(message, flush=True)
    return TrainResult(files.dir, last, best_val)
