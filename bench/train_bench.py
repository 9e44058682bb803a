"""Section ``train``: training throughput (images/s) of both presets, stage ``highres``.

The real training step of ``refseg_model.train`` (``train_step``, the loop's body): the
preset's dataset and loader (``build_dataset``, ``make_loader``: preprocessing counted, grouped
expressions per image where the preset asks), the numeric path ``precision: auto`` picks for
training, channels-last images, forward, the loss with deep supervision where the preset has it,
backward, gradient clipping, the preset's optimiser.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from refseg_model.config import load_config
from refseg_model.data import open_source
from refseg_model.ddp import DistInfo
from refseg_model.fastpath import resolve_path
from refseg_model.train import (
    StepContext,
    build_dataset,
    make_loader,
    make_optimizer,
    train_step,
)

from .machine import synchronize
from .models import load_network
from .stats import summarize


def train_throughput(name: str, data_root, device: torch.device, batch: int, steps: int,
                     log) -> dict:
    """Time ``steps`` training steps (after one warm-up step) of network ``name``."""
    net = load_network(name)
    tcfg = dataclasses.replace(load_config(net.preset).train.for_stage("highres"),
                               batch_size=batch, workers=0)
    if tcfg.expressions_per_image > 1 and batch % tcfg.expressions_per_image:
        tcfg = dataclasses.replace(tcfg, expressions_per_image=1)
    path = resolve_path(tcfg.precision, tcfg.channels_last, device, training=True)
    model = net.model.to(device).train()
    model = model.to(memory_format=torch.channels_last if path.channels_last
                     else torch.contiguous_format)
    source = open_source("synthetic", data_root, "train")
    dataset = build_dataset(net.config, tcfg, "highres", net.vocabulary, source)
    batches = iter(make_loader(dataset, tcfg, DistInfo(device=device), 0))
    ctx = StepContext(model, model, make_optimizer(model, tcfg), tcfg, "highres", path, device)
    precision = path.precision
    times = []
    for step in range(steps + 1):
        tick = time.perf_counter()
        train_step(ctx, next(batches), step=step)
        synchronize(device)
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - tick)
    stats = summarize(times)
    height, width = net.config.input_shape
    row = {"network": name, "preset": net.preset, "input": f"{width}x{height}px",
           "precision": precision, "expressions_per_image": tcfg.expressions_per_image,
           "batch": batch, "step": stats, "images_per_s": batch / stats["median"]}
    log(f"  train {name} ({net.preset}) batch {batch}: {stats['median']:.2f} s/step, "
        f"{row['images_per_s']:.2f} images/s ({precision})")
    return row
