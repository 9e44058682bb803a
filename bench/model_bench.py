"""Section ``model`` of the benchmark: FLOPs, latency, agreement and profile of the networks.

Forward latency and throughput per numeric path, ``Segmenter.predict`` latency, the agreement
of the fast path's masks with float32, and a profile of where the time goes.
"""

from __future__ import annotations

import copy
import time

import cv2
import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from refseg_model.data import open_source
from refseg_model.fastpath import (
    NumericPath,
    autocast,
    cpu_has_fast_bf16,
    prepare_images,
    prepare_model,
    resolve_path,
)
from refseg_model.metrics import mask_iou

from .machine import synchronize
from .models import Network, segmenter_of
from .stats import summarize, time_calls

PARTS = ("backbone.body", "backbone.head", "expression_encoder", "classifier", "context",
         "landmark", "upsample", "decoder")


def parts_of(model: torch.nn.Module) -> tuple[str, ...]:
    """Return the parts of ``PARTS`` this network has (a skip decoder replaces the upsampling)."""
    names = dict(model.named_modules())
    return tuple(part for part in PARTS if isinstance(names.get(part), torch.nn.Module))


def topmost(names, part: str) -> list[str]:
    """Return the names in ``names`` inside ``part`` (itself or below) with no ancestor there.

    A part's cost is that of the modules of its subtree that ran as modules: the part itself, or
    where the network calls its children one by one (the backbone's layers, read for the skip
    decoder) or uses a child's weights directly (the folded first classifier layer), the
    children that did run; the rest of a forward pass is "other".
    """
    inside = {n for n in names if n == part or n.startswith(part + ".")}
    return sorted(n for n in inside
                  if not any(n.startswith(a + ".") for a in inside if a != n))


def _called(model: torch.nn.Module, run) -> set[str]:
    """Return the names of the modules whose ``forward`` ran during ``run()``."""
    called, handles = set(), []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(
            lambda _m, _a, name=name: called.add(name)))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return called


def count_flops(net: Network, batch: int = 1) -> dict:
    """Count the FLOPs of one ``highres`` forward pass (``FlopCounterMode``).

    On real CPU tensors, not ``meta`` ones: the landmark grounding picks its rows with
    ``nonzero`` (data-dependent, which meta tensors cannot do). The command is all padding, so
    no landmark pass is counted (a relation's costs about 30% more, docs/PERFORMANCE.md).
    """
    model = copy.deepcopy(net.model).to("cpu").float().eval()
    height, width = net.config.input_shape
    images = torch.zeros(batch, 3, height, width)
    tokens = torch.zeros(batch, net.config.max_len, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(images, tokens, stage="highres")
    root = type(model).__name__ + "."
    per_module = {k[len(root):]: int(sum(v.values()))
                  for k, v in counter.get_flop_counts().items() if k.startswith(root)}
    parts = {part: sum(per_module[n] for n in topmost(per_module, part))
             for part in parts_of(net.model)}
    return {"batch": batch, "input": f"{width}x{height}", "total": int(counter.get_total_flops()),
            "parts": parts}


def fast_path_for(device: torch.device) -> NumericPath:
    """Return the path ``precision="auto"`` picks on ``device`` (the node's default)."""
    return resolve_path("auto", None, device)


def forward_variants(device: torch.device, quick: bool, compile_: bool) -> list[dict]:
    """Return the variants to time: numeric path, batches, compile flag."""
    variants = [{"path": NumericPath("fp32", False)}, {"path": NumericPath("fp32", True)}]
    if device.type == "cuda":
        variants += [{"path": NumericPath("bf16", True)}, {"path": NumericPath("fp16", True)}]
    else:
        variants.append({"path": NumericPath("bf16", True), "emulated": not cpu_has_fast_bf16()})
    if compile_:
        variants.append({"path": fast_path_for(device), "compile": True, "batches": (1,)})
    return variants


def _inputs(net: Network, batch: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    height, width = net.config.input_shape
    images = (torch.rand(batch, 3, height, width, generator=gen) * 255 - 120).to(device)
    tokens = torch.randint(1, net.config.vocab_size, (batch, net.config.max_len), generator=gen)
    return images, tokens.to(device)


def _compiled(model: torch.nn.Module, device: torch.device):
    """Return ``torch.compile(model)`` (inductor; weights frozen and pre-packed on a CPU)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    mode = "reduce-overhead" if device.type == "cuda" else None  # CUDA graphs on a GPU
    return torch.compile(model, mode=mode)


def time_forward(net: Network, device: torch.device, variant: dict, batch: int, peak: dict,
                 flops_1: int, budget_s: float, log) -> dict:
    """Time ``variant`` of ``net``'s forward pass at ``batch``; return the figures."""
    path: NumericPath = variant["path"]
    label = path.name + (" +compile" if variant.get("compile") else "") + (
        " (emulated bf16)" if variant.get("emulated") else "")
    row = {"network": net.name, "variant": label, "precision": path.precision,
           "channels_last": path.channels_last, "compile": bool(variant.get("compile")),
           "batch": batch}
    model = prepare_model(copy.deepcopy(net.model).to(device).eval(), path)
    images, tokens = _inputs(net, batch, device)
    images = prepare_images(images, path)
    try:
        with torch.inference_mode():
            runner = model
            if variant.get("compile"):
                tick = time.perf_counter()
                runner = _compiled(model, device)
                with autocast(device, path):
                    runner(images, tokens)
                synchronize(device)
                row["compile_s"] = time.perf_counter() - tick

            def call():
                with autocast(device, path):
                    runner(images, tokens, stage="highres")

            warmup, iters = (0, 1) if variant.get("emulated") else (1, 50)
            if device.type == "cuda":
                warmup, iters = 3, 100
            times = time_calls(call, warmup, iters, lambda: synchronize(device), budget_s)
    except Exception as err:  # noqa: BLE001 - a variant that fails is reported, not fatal
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        log(f"  {net.name} {label} batch {batch}: FAILED {row['error']}")
        return row
    stats = summarize(times)
    achieved = flops_1 * batch / stats["median"]
    peak_key = "bf16" if path.precision == "bf16" else ("fp16" if path.precision == "fp16"
                                                        else "fp32")
    row.update(latency=stats, images_per_s=batch / stats["median"], flop_per_s=achieved,
               peak_dtype=peak_key, fraction_of_peak=achieved / peak[peak_key]["flop_per_s"]
               if peak_key in peak else None)
    log(f"  {net.name} {label:32s} batch {batch}: median {stats['median'] * 1e3:8.1f} ms, "
        f"p95 {stats['p95'] * 1e3:8.1f} ms, {row['images_per_s']:7.2f} img/s, "
        f"{achieved / 1e9:6.1f} GFLOP/s"
        + (f" ({row['fraction_of_peak']:.0%} of {peak_key} peak)" if row["fraction_of_peak"]
           else ""))
    return row


def time_parts(net: Network, device: torch.device, path: NumericPath, repeats: int = 5) -> dict:
    """Return the seconds each part takes in the fastest of ``repeats`` batch-1 forward passes."""
    model = prepare_model(copy.deepcopy(net.model).to(device).eval(), path)
    images, tokens = _inputs(net, 1, device)
    images = prepare_images(images, path)
    spent = dict.fromkeys(parts_of(model), 0.0)
    with torch.inference_mode(), autocast(device, path):
        called = _called(model, lambda: model(images, tokens))  # also the warm-up
    starts = {}
    handles = []
    for part in spent:
        for name in topmost(called, part):

            def pre(_m, _a, name=name):
                synchronize(device)
                starts[name] = time.perf_counter()

            def post(_m, _a, _o, name=name, part=part):
                synchronize(device)
                spent[part] += time.perf_counter() - starts[name]

            module = model.get_submodule(name)
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    best = None
    with torch.inference_mode(), autocast(device, path):
        for _ in range(repeats):  # the least disturbed pass of a few (a noisy machine)
            for key in spent:
                spent[key] = 0.0
            synchronize(device)
            tick = time.perf_counter()
            model(images, tokens)
            synchronize(device)
            total = time.perf_counter() - tick
            if best is None or total < best[0]:
                best = (total, dict(spent))
    for handle in handles:
        handle.remove()
    total, parts = best
    parts["other"] = max(0.0, total - sum(parts.values()))
    return {"path": path.name, "total_s": total, "parts_s": parts, "passes": repeats}


def profile_ops(net: Network, device: torch.device, path: NumericPath, top: int = 8) -> list:
    """Return the ``top`` operators by self time in one batch-1 forward (torch.profiler)."""
    model = prepare_model(copy.deepcopy(net.model).to(device).eval(), path)
    images, tokens = _inputs(net, 1, device)
    images = prepare_images(images, path)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    with torch.inference_mode(), autocast(device, path):
        model(images, tokens)
        with profile(activities=activities) as prof:
            model(images, tokens)
            synchronize(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)
    total = sum(getattr(e, attr) for e in events) or 1.0
    return [{"op": e.key, "self_ms": getattr(e, attr) / 1e3, "share": getattr(e, attr) / total,
             "calls": e.count} for e in events[:top]]


def frames_of(root, size: tuple[int, int] | None, count: int):
    """Return up to ``count`` (rgb, expression, sample_id) of the synthetic test split."""
    source = open_source("synthetic", root, "test")
    frames = []
    for sample in source.samples[:count]:
        loaded = source.load(sample)
        if loaded is None:
            continue
        rgb = loaded[0]
        if size is not None and rgb.shape[:2] != (size[1], size[0]):
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        frames.append((rgb, sample.expression, sample.sample_id))
    return frames


def predict_latency(net: Network, device: torch.device, path: NumericPath | None, frames,
                    iters: int, budget_s: float, flops_1: int, peak: dict) -> dict:
    """Time ``Segmenter.predict`` (preprocessing, forward, unletterbox) on ``frames``.

    ``path=None``: the node's default (``precision="auto"``, ``compile="auto"``). The rate is
    given as a fraction of the best dense-kernel peak of this run (any dtype).
    """
    if path is None:
        seg = segmenter_of(net, device, "auto", None, "auto")
    else:
        seg = segmenter_of(net, device, path.precision, path.channels_last)
    rgb, expression, _ = frames[0]
    times = time_calls(lambda: seg.predict(rgb, expression), 1, iters,
                       lambda: synchronize(device), budget_s)
    stats = summarize(times)
    best = max(peak.values(), key=lambda p: p["flop_per_s"])
    rate = flops_1 / stats["median"]
    return {"network": net.name, "path": seg.numeric_path.name,
            "default_path": path is None, "reason": seg.numeric_path.reason,
            "input": f"{rgb.shape[1]}x{rgb.shape[0]}", "latency": stats,
            "frames_per_s": 1.0 / stats["median"], "flop_per_s": rate,
            "best_peak_dtype": best["dtype"], "fraction_of_best_peak": rate / best["flop_per_s"]}


def agreement(net: Network, device: torch.device, path: NumericPath, frames) -> dict:
    """Return the IoU of the masks of ``path`` against the float32 path over ``frames``."""
    ref = segmenter_of(net, device)
    fast = segmenter_of(net, device, path.precision, path.channels_last)
    inter = union = 0
    ious, fg = [], []
    for rgb, expression, _ in frames:
        a, b = ref.predict(rgb, expression).mask, fast.predict(rgb, expression).mask
        inter += int(np.logical_and(a, b).sum())
        union += int(np.logical_or(a, b).sum())
        ious.append(mask_iou(a, b))
        fg.append(float(a.mean()))
    return {"network": net.name, "path": path.name, "samples": len(frames),
            "overall_iou": inter / union if union else 1.0, "min_iou": min(ious),
            "mean_fg_fraction": float(np.mean(fg))}
