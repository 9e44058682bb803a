"""The machine a figure was measured on, and its measured matrix-multiply peak."""

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
    torch.mm(a, b)
    synchronize(device)
    best, start, runs = float("inf"), time.perf_counter(), 0
    while runs < 2 or time.perf_counter() - start < seconds:
        tick = time.perf_counter()
        reps = 10 if device.type == "cuda" else 1
        for _ in range(reps):
            torch.mm(a, b)
        synchronize(device)
        best = min(best, (time.perf_counter() - tick) / reps)
        runs += 1
    return {"dtype": str(dtype).replace("torch.", ""), "size": size,
            "flop_per_s": flop / best, "runs": runs}
