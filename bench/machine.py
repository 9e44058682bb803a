"""The machine a figure was measured on, and its measured dense-kernel peak."""

from __future__ import annotations

import os
import platform
import time

import torch

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16",
                     "amx_tile")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """Return the CPU model name and the SIMD flags of interest, from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags.update(value.split())
    except OSError:
        pass
    return model, [f for f in FLAGS_OF_INTEREST if f in flags]


def machine_info(device: torch.device) -> dict:
    """Return what a reader needs to compare figures: CPU, cores, threads, GPU, versions."""
    model, flags = cpu_model_and_flags()
    info = {
        "cpu": model, "cpu_flags": flags, "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "device": str(device), "gpu": None,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_label(info: dict) -> str:
    """Return a one-line description such as ``AMD EPYC, 2 cores, 2 torch threads``."""
    text = f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads"
    if info.get("load_average") is not None:  # other work on the machine skews every figure
        text += f", load average {info['load_average']:.1f} at the start"
    if info.get("gpu"):
        text += f", GPU {info['gpu']}"
    return text


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0,
                size: int | None = None) -> dict:
    """Measure the best square matrix-multiply rate (FLOP/s) for ``dtype`` on ``device``."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    flop = 2.0 * size ** 3
    reps = 10 if device.type == "cuda" else 1

    def call():
        for _ in range(reps):
            torch.mm(a, b)
    best, runs = _best_time(call, device, seconds)
    best /= reps
    return {"dtype": _dtype_name(dtype), "size": size, "flop_per_s": flop / best, "runs": runs}


def conv_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0,
              channels: int = 256, side: int = 64) -> dict:
    """Measure the best rate (FLOP/s) of a channels-last 3x3 convolution (oneDNN on a CPU).

    On an AMD CPU, MKL's ``torch.mm`` in fp32 runs at less than half of what oneDNN's
    convolutions reach (186 against 449 GFLOP/s on an AMD EPYC with AVX-512, 2026-12-02), so a
    matmul alone would put convolutions above "100 % of peak".
    """
    fmt = torch.channels_last
    x = torch.randn(1, channels, side, side, device=device).to(dtype).contiguous(memory_format=fmt)
    w = torch.randn(channels, channels, 3, 3, device=device).to(dtype).contiguous(
        memory_format=fmt)
    flop = 2.0 * channels * channels * 9 * side * side
    best, runs = _best_time(lambda: torch.nn.functional.conv2d(x, w, padding=1), device,
                            seconds)
    return {"dtype": _dtype_name(dtype), "size": f"{channels}ch {side}x{side} 3x3",
            "flop_per_s": flop / best, "runs": runs, "kernel": "conv3x3"}


def dense_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0,
               size: int | None = None) -> dict:
    """Return the better of :func:`matmul_peak` and (on a CPU) :func:`conv_peak` for ``dtype``.

    The result names its ``kernel`` (``matmul`` or ``conv3x3``) and keeps both rates.
    """
    if device.type != "cpu":
        return dict(matmul_peak(device, dtype, seconds, size), kernel="matmul")
    mm = dict(matmul_peak(device, dtype, seconds / 2, size), kernel="matmul")
    conv = conv_peak(device, dtype, seconds / 2, side=32 if size and size <= 1024 else 64)
    best = dict(max(mm, conv, key=lambda r: r["flop_per_s"]))
    best["rates"] = {"matmul": mm["flop_per_s"], "conv3x3": conv["flop_per_s"]}
    return best


def _dtype_name(dtype: torch.dtype) -> str:
    """Return ``float32`` for ``torch.float32``, and so on."""
    return str(dtype).replace("torch.", "")


def _best_time(call, device: torch.device, seconds: float) -> tuple[float, int]:
    """Return (the best time of one ``call`` in seconds, runs) over at least ``seconds``."""
    call()
    synchronize(device)
    best, start, runs = float("inf"), time.perf_counter(), 0
    while runs < 2 or time.perf_counter() - start < seconds:
        tick = time.perf_counter()
        call()
        synchronize(device)
        best = min(best, time.perf_counter() - tick)
        runs += 1
    return best, runs
