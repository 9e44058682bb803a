"""Staged training (Sec. 3.3 of the paper; the released code's recipe): det, lowres, highres.

Stage ``det`` (optional, the released code's first stage; see ``refseg_model.detection``) trains
the text encoder and classifier on box crops. Stage ``lowres`` trains on the coarse labels (a
response-map cell is foreground if any of its pixels is); stage ``highres`` starts from the
low-resolution weights, adds the deconvolution (bilinear-initialised) and trains on
full-resolution labels. Each stage starts from the weights the previous one ended with; its
settings are ``TrainConfig.for_stage(stage)`` (per-stage loss weights, schedule, frozen layers).
SGD with momentum, weight decay on weights only, staircase learning-rate decay restarting at each
stage.

A run folder holds ``config.yaml`` (resolved configuration), ``metrics.jsonl`` and
``loss_curve.png`` (``refseg_model.run_files``), ``last.pt`` (every ``checkpoint_every`` steps
and at the end of each stage, with the full training state), ``det.pt`` / ``lowres.pt``
(weights at the end of those stages) and ``best.pt`` (best validation overall IoU, when a
validation split is given) (``refseg_model.checkpointer``). ``resume`` continues from
``last.pt`` exactly: same stage and step, optimizer state, RNG states, and the same data order
(fixed by seed and epoch).

The entry point is :func:`train` (typed: a ``RunConfig``, a ``DataSpec``, a run folder and
``TrainOptions``); ``refseg-train`` only parses its command line into those. Progress goes to
the ``refseg_model.train`` logger (the command prints it).

Launched by ``torchrun``, training is data parallel (``gloo`` on CPU, ``nccl`` on CUDA);
``batch_size`` is per process and only rank 0 writes files.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .augment import ExposureDraw
from .checkpoint import CheckpointError, load_checkpoint, model_config_of, model_from_checkpoint
from .checkpointer import Checkpointer, ResumeState
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
    cleanup_distributed,
    setup_distributed,
)
from .detection import BoxDataset, RegionScorer, released_det_init
from .evaluate import evaluate
from .fastpath import NumericPath, autocast, resolve_path
from .inference import Segmenter, resolve_device
from .loss import soft_dice_loss, weighted_logistic_loss
from .network import build_model, parameter_groups
from .rng import seed_everything, set_rng_state
from .run_files import RunFiles
from .text import Vocabulary

log = logging.getLogger("refseg_model.train")


# -- data ------------------------------------------------------------------------------------
def build_vocabulary(train_source, vocab_file: str | Path | None = None) -> Vocabulary:
    """Return ``vocab_file``'s vocabulary, or else the one of the train split's expressions."""
    if vocab_file:
        return Vocabulary.from_file(vocab_file)
    return Vocabulary.build(train_source.expressions())


def build_dataset(cfg: ModelConfig, tcfg: TrainConfig, stage: str, vocab, source):
    """Return the training dataset of ``stage``: box crops (``det``), coarse or full labels."""
    if stage == "det":
        return BoxDataset(source, vocab, cfg, tcfg.det, seed=tcfg.seed)
    label = "coarse" if stage == "lowres" else "full"
    return RefSegDataset(source, vocab, cfg.input_width, label=label, stride=cfg.stride,
                         max_len=cfg.max_len, input_height=cfg.input_height,
                         input_shape_for=cfg.input_shape_for if cfg.keep_aspect else None,
                         photometric=tcfg.photometric, seed=tcfg.seed,
                         exposure=ExposureDraw(**tcfg.exposure))


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


# -- validation ------------------------------------------------------------------------------
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


# -- one step --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepContext:
    """What every training step of a stage shares.

    Attributes:
        module: What runs forward: the model, the det stage's ``RegionScorer`` around it, or
            their ``DistributedDataParallel`` wrapper.
        model: The bare network (``TextObjSegModel``): its parameters are the ones clipped.
        optimizer: The stage's optimizer.
        tcfg: The stage's resolved configuration (``TrainConfig.for_stage``).
        stage: ``det``, ``lowres`` or ``highres``.
        path: The numeric path: precision (autocast) and memory format of the images.
        device: Where the batch goes.
    """

    module: torch.nn.Module
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    tcfg: TrainConfig
    stage: str
    path: NumericPath
    device: torch.device

    @property
    def aux(self) -> bool:
        """Whether the step adds the loss of the coarse response map (deep supervision)."""
        return self.stage == "highres" and self.tcfg.aux_weight > 0


def train_step(ctx: StepContext, batch: dict, step: int = 0) -> tuple[torch.Tensor, int]:
    """Run one optimisation step on ``batch``; return (loss, samples in the batch).

    The body of the training loop, also timed by ``bench/train_bench.py``: one backbone pass per
    distinct image of grouped batches (``image_index``), detection crops' box features, the
    numeric path's autocast, the stage's loss plus deep supervision of the coarse map
    (``ctx.aux``), gradient clipping. ``step`` only labels the error of a non-finite loss.
    """
    tcfg = ctx.tcfg
    extra: dict[str, Any] = {}
    rows = slice(None)
    if "spatial" in batch:  # detection crops: box features, one crop per sample
        extra["spatial"] = batch["spatial"].to(ctx.device)
    elif "image_id" in batch:  # several expressions of one image: one backbone pass
        rows, image_index = unique_images(list(batch["image_id"]))
        if len(rows) < len(image_index):
            extra["image_index"] = image_index.to(ctx.device)
    if ctx.aux:
        extra["return_coarse"] = True
    memory_format = torch.channels_last if ctx.path.channels_last else torch.contiguous_format
    images = batch["image"][rows].to(ctx.device, non_blocking=True).contiguous(
        memory_format=memory_format)
    tokens = batch["tokens"].to(ctx.device, non_blocking=True)
    labels = batch["mask"].to(ctx.device, non_blocking=True)
    with autocast(ctx.device, ctx.path):
        output = ctx.module(images, tokens, stage=ctx.stage, **extra)
    logits, coarse = output if ctx.aux else (output, None)
    loss = criterion(logits.float(), labels, tcfg)
    if coarse is not None:
        loss = loss + tcfg.aux_weight * weighted_logistic_loss(
            coarse.float(), coarse_targets(labels, ctx.model.config.stride), tcfg.w_fg,
            tcfg.w_bg)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{ctx.stage} step {step}: loss is {loss.item()}; lower "
                                 "--lr or enable grad_clip")
    ctx.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if tcfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), tcfg.grad_clip)
    ctx.optimizer.step()
    return loss.detach(), int(tokens.shape[0])


# -- one stage -------------------------------------------------------------------------------
@dataclass
class RunContext:
    """What the stages of one run share: its folder, processes, vocabulary and validation.

    Attributes:
        files: The run folder's metrics and loss curve.
        info: This process's place in a data-parallel run and its device.
        vocab: The vocabulary of the run.
        checkpointer: Writes the checkpoints (and keeps the best validation score).
        val_source: Validation samples (rank 0 only; ``None``: no validation).
    """

    files: RunFiles
    info: DistInfo
    vocab: Vocabulary
    checkpointer: Checkpointer
    val_source: Any = None

    def validate(self, model: torch.nn.Module, stage: str, step: int, total: int,
                 tcfg: TrainConfig) -> dict[str, float] | None:
        """Validate when due (``val_every``, a stage's end); return the metrics or ``None``."""
        due = not tcfg.val_every or step % tcfg.val_every == 0 or step == total
        if self.val_source is None or not self.info.is_main or not due:
            return None
        val = evaluate_hook(model, model.config, self.vocab, stage, self.val_source,
                            self.info.device, tcfg.val_max_samples)
        self.files.add_metrics({"stage": stage, "step": step,
                                **{f"val_{k}": v for k, v in val.items()}})
        log.info("[%s %d/%d] val overall IoU %.4f mean IoU %.4f (%d samples)", stage, step,
                 total, val["overall_iou"], val["mean_iou"], val["num_samples"])
        return val

    def checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, stage: str,
                   step: int, total: int, tcfg: TrainConfig, started: float) -> None:
        """Validate when due, then write the checkpoints of ``step``.

        ``started`` is the ``time.perf_counter()`` at which the stage's clock began; the clock
        stored for a resume includes the validation.
        """
        val = self.validate(model, stage, step, total, tcfg)
        self.checkpointer.save(model, optimizer, stage, step,
                               elapsed_s=time.perf_counter() - started,
                               stage_end=step == total, val=val)


def train_one_stage(model: torch.nn.Module, stage: str, dataset, tcfg: TrainConfig,
                    run: RunContext, start: ResumeState) -> None:
    """Train ``model`` for the iterations of ``stage`` from ``start``, writing checkpoints.

    ``tcfg`` is the stage's resolved configuration (``TrainConfig.for_stage``); ``start`` says
    which step of the stage is next, with its optimizer state and clock.
    """
    info = run.info
    total = tcfg.stage_iters(stage)
    module = RegionScorer(model) if stage == "det" else model  # det: box crops, same weights
    if info.distributed:
        module = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=stage != "highres")
    optimizer = make_optimizer(model, tcfg)
    if start.optimizer is not None:
        optimizer.load_state_dict(start.optimizer)
    path = resolve_path(tcfg.precision, tcfg.channels_last, info.device, training=True)
    model.train()
    # NHWC: oneDNN's fast convolutions on CPU
    model.to(memory_format=torch.channels_last if path.channels_last else torch.contiguous_format)
    ctx = StepContext(module, model, optimizer, tcfg, stage, path, info.device)
    batches = iter(make_loader(dataset, tcfg, info, start.step))
    if info.is_main and start.step < total:
        log.info("[%s] numeric path %s (%s), optimizer %s, schedule %s, steps %d-%d", stage,
                 path.name, path.reason, tcfg.optimizer, tcfg.schedule, start.step + 1, total)
    report_every = max(1, total // 100)
    budget = tcfg.time_budget_s
    step = start.step
    started = time.perf_counter() - start.elapsed_s  # a resumed time-budgeted stage keeps its clock
    tick = time.perf_counter()
    while step < total:
        fraction = (time.perf_counter() - started) / budget if budget else None
        if fraction is not None and fraction >= 1.0:
            if info.is_main:
                log.info("[%s] time budget of %.0f s used up at step %d", stage, budget, step)
            total = step
            run.checkpoint(model, optimizer, stage, step, total, tcfg, started)
            break
        factor = learning_rate_factor(tcfg, step, total, fraction)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        loss, samples = train_step(ctx, next(batches), step=step + 1)
        step += 1
        now = time.perf_counter()
        loss_value = all_reduce_mean(float(loss.item()), info)
        img_per_s = samples * info.world_size / max(now - tick, 1e-9)
        tick = now
        if step % tcfg.log_every == 0 or step == total:
            run.files.add_metrics({"stage": stage, "step": step, "loss": loss_value,
                                   "elapsed_s": round(now - started, 2), "lr": tcfg.lr * factor,
                                   "img_per_s": round(img_per_s, 2), "time": time.time()})
        if info.is_main and (step % report_every == 0 or step == total):
            log.info("[%s %d/%d] loss %.4f, %.1f img/s, %.0f s", stage, step, total,
                     loss_value, img_per_s, now - started)
        if step == total or (tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0):
            run.checkpoint(model, optimizer, stage, step, total, tcfg, started)


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
    of the text encoder and classifier (``det.released_init``); ``highres`` after ``det`` /
    ``lowres`` weights gets the deconvolution reset to bilinear upsampling
    (``init_referit_seg_highres_from_lowres.py``). Everything else carries over unchanged
    (``init_referit_seg_lowres_from_det.py`` copies every variable).
    """
    set_head_trainable(model, not tcfg.freeze_head)
    if stage == "det" and fresh_model and tcfg.det.released_init:
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
        time_budget_s: Seconds per stage (``None``: the configuration's); like ``iters`` it wins
            over a resumed run's stored configuration, so a run can be given more time (or
            less) when it is continued: the cosine schedule then spans the new budget from
            the clock the run had reached.
    """

    stage: str = "both"
    resume: bool = False
    init: str | Path | None = None
    val_split: str | None = None
    vocab: str | Path | None = None
    device: str = "auto"
    threads: int | None = None
    iters: dict[str, int] = field(default_factory=dict)
    time_budget_s: float | None = None


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
    resumed = read_resume_checkpoint(last, info) if options.resume else None
    if resumed is not None:  # the stored configuration wins; iterations may be extended
        cfg = model_config_of(resumed, last)
        tcfg = TrainConfig.from_dict(dict(resumed["train_state"]["train_config"]))
    else:
        cfg, tcfg = run.model, run.train
    tcfg = dataclasses.replace(tcfg, **{f"{name}_iters": int(iters)
                                        for name, iters in options.iters.items()})
    if options.time_budget_s is not None and options.time_budget_s != tcfg.time_budget_s:
        if resumed is not None and info.is_main:
            log.info("time budget %.0f s (the run was started with %.0f s)",
                     options.time_budget_s, tcfg.time_budget_s)
        tcfg = dataclasses.replace(tcfg, time_budget_s=float(options.time_budget_s))
    seed_everything(tcfg.seed)

    train_source = data.open()
    vocab = (Vocabulary.from_list(resumed["vocabulary"]) if resumed is not None
             else build_vocabulary(train_source, options.vocab))
    val_source = data.open(options.val_split) if options.val_split and info.is_main else None

    if resumed is not None:
        model = model_from_checkpoint(resumed, last)
        start = ResumeState.from_checkpoint(resumed, stages, tcfg, last)
        set_rng_state(resumed["train_state"]["rng"])  # after the model's initialisation
        files.truncate_metrics(TRAIN_STAGES.index(resumed["stage"]),
                               int(resumed["train_state"]["step"]))
    elif options.init:
        init = load_checkpoint(options.init)
        model = model_from_checkpoint(init, options.init)
        cfg, vocab = model_config_of(init, options.init), Vocabulary.from_list(init["vocabulary"])
        start = ResumeState(weights_from=init["stage"])
    else:
        if stages[0] == "highres":
            log.warning("stage highres without --init: starting from random initialisation")
        model = build_model(cfg, vocabulary=vocab.to_list())
        start = ResumeState(fresh_model=True)
    model.to(info.device)

    if info.is_main:
        save_config(RunConfig(dataclasses.replace(cfg, vocab_size=len(vocab)), tcfg),
                    files.dir / "config.yaml")
        log.info("%s (%d samples, vocabulary %d words), %s %dx%dpx, stages %s, %d process(es) "
                 "on %s, run folder %s", data.describe(), len(train_source), len(vocab),
                 cfg.backbone, cfg.input_height, cfg.input_width, stages[start.stage_index:],
                 info.world_size, info.device, files.dir)

    checkpointer = Checkpointer(files, info, vocab.to_list(), tcfg, best_val=start.best_val)
    context = RunContext(files, info, vocab, checkpointer, val_source)
    for index in range(start.stage_index, len(stages)):
        stage = stages[index]
        scfg = tcfg.for_stage(stage)
        begin_stage(model, stage, scfg, fresh_model=start.fresh_model and not start.mid_stage,
                    weights_from=None if start.mid_stage else start.weights_from)
        dataset = build_dataset(model.config, scfg, stage, vocab, train_source)
        train_one_stage(model, stage, dataset, scfg, context, start)
        start = start.next_stage(stage)
    set_head_trainable(model, True)
    best_val = checkpointer.best_val
    if info.is_main:
        message = f"done; checkpoint {last}"
        if best_val is not None and not math.isnan(best_val):
            message += f", best val overall IoU {best_val:.4f} ({files.dir / 'best.pt'})"
        log.info(message)
    return TrainResult(files.dir, last, best_val)


def read_resume_checkpoint(last: Path, info: DistInfo) -> dict[str, Any]:
    """Return the ``last.pt`` that ``--resume`` continues from (raises ``CheckpointError``)."""
    if not last.is_file():
        raise CheckpointError(f"--resume: no checkpoint {last} in the run folder {last.parent}")
    payload = load_checkpoint(last)
    state = payload.get("train_state")
    if not state:
        raise CheckpointError(f"--resume: {last} has no training state")
    if state.get("world_size", 1) != info.world_size:
        log.warning("resuming a run of %s process(es) on %s: the data order differs",
                    state.get("world_size"), info.world_size)
    return payload
