"""Section ``train``: training throughput (images/s) of both presets, stage ``highres``.

The real training step of ``refseg_model.train``: the synthetic dataset through
``RefSegDataset`` and a ``DataLoader`` (preprocessing counted), forward, the weighted logistic
loss, backward, SGD with momentum.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from refseg_model.config import load_config
from refseg_model.data import RefSegDataset, open_source
from refseg_model.train import criterion, make_optimizer

from .machine import synchronize
from .models import load_network
from .stats import summarize


def train_throughput(name: str, data_root, device: torch.device, batch: int, steps: int,
                     log) -> dict:
    """Time ``steps`` training steps (after one warm-up step) of network ``name``."""
    net = load_network(name)
    tcfg = load_config(net.preset).train.for_stage("highres")
    model = net.model.to(device).train()
    source = open_source("synthetic", data_root, "train")
    dataset = RefSegDataset(source, net.vocabulary, net.config.input_size, label="full",
                            stride=net.config.stride, max_len=net.config.max_len)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    optimizer = make_optimizer(model, tcfg)
    batches = iter(loader)
    times = []
    for step in range(steps + 1):
        tick = time.perf_counter()
        try:
            item = next(batches)
        except StopIteration:
            batches = iter(loader)
            item = next(batches)
        logits = model(item["image"].to(device), item["tokens"].to(device), stage="highres")
        loss = criterion(logits, item["mask"].to(device), tcfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - tick)
    stats = summarize(times)
    row = {"network": name, "preset": net.preset, "input": f"{net.config.input_size}px",
           "batch": batch, "step": stats, "images_per_s": batch / stats["median"]}
    log(f"  train {name} ({net.preset}) batch {batch}: {stats['median']:.2f} s/step, "
        f"{row['images_per_s']:.2f} images/s")
    return row
