"""The fast numeric path of inference: reduced-precision autocast and channels-last memory.

On a CPU with AVX-512 BF16 (or AMX), convolutions and matrix multiplies in bfloat16 run at
about 2.5x the float32 rate; oneDNN's convolutions are fastest on NHWC (channels-last) tensors.
On CUDA, float16 or bfloat16 autocast uses the tensor cores. Autocast keeps the numerically
sensitive operations (reductions, normalisation, the final sigmoid) in float32, so masks
agree with the float32 path (checked by ``tests/model/test_fastpath.py`` and measured by
``make bench``).

``NumericPath`` says how to run; :func:`prepare_model`, :func:`prepare_images` and
:func:`autocast` apply it. ``Segmenter(..., precision="bf16", channels_last=True)`` uses them.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class NumericPath:
    """How the network runs: ``precision`` of the autocast region and the memory format.

    Attributes:
        precision: ``"fp32"`` (no autocast), ``"bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA).
        channels_last: Keep the weights and the image batch in NHWC memory format.
    """

    precision: str = "fp32"
    channels_last: bool = False

    @property
    def dtype(self) -> torch.dtype:
        """The autocast dtype (``torch.float32`` when there is no autocast)."""
        return DTYPES[self.precision]

    @property
    def name(self) -> str:
        """A short label such as ``bf16+channels_last``."""
        return self.precision + ("+channels_last" if self.channels_last else "")


def resolve_path(precision: str = "fp32", channels_last: bool = False,
                 device: str | torch.device = "cpu") -> NumericPath:
    """Check ``precision`` for ``device`` and return the ``NumericPath``.

    Raises ``ValueError`` for an unknown precision, or ``fp16`` on a CPU (half-precision
    autocast on a CPU is slower than float32 and loses range; use ``bf16`` there).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    device = torch.device(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; on a CPU use bf16 (or fp32)")
    return NumericPath(precision, bool(channels_last))


def cpu_has_fast_bf16() -> bool:
    """Tell whether this CPU has native bfloat16 dot products (AVX-512 BF16 or AMX)."""
    try:
        flags = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def _float32_forward(module: torch.nn.Module, forward):
    """Return ``forward`` of ``module`` run outside autocast, on float32 inputs."""
    @functools.wraps(forward)
    def run(*args, **kwargs):
        device_type = next(module.parameters()).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a
                    for a in args]
            return forward(*args, **kwargs)
    return run


def prepare_model(model: torch.nn.Module, path: NumericPath) -> torch.nn.Module:
    """Put ``model``'s weights in the memory format of ``path`` (in place); return it.

    The weights stay float32: autocast casts them per operation, so the same model serves
    every precision and the checkpoint is unchanged. Recurrent layers (the expression
    encoder's LSTM: 20 small steps, a negligible share of the time) stay in float32: oneDNN
    has no bfloat16 LSTM primitive for float32 weights on a CPU.
    """
    if path.channels_last:
        model.to(memory_format=torch.channels_last)
    if path.precision != "fp32":
        for module in model.modules():
            if isinstance(module, torch.nn.RNNBase) and "forward" not in vars(module):
                module.forward = _float32_forward(module, module.forward)
    return model


def prepare_images(images: torch.Tensor, path: NumericPath) -> torch.Tensor:
    """Return the B x 3 x H x W batch in the memory format of ``path``."""
    if path.channels_last:
        return images.contiguous(memory_format=torch.channels_last)
    return images


def autocast(device: torch.device | str, path: NumericPath):
    """Return the autocast context of ``path`` on ``device`` (a null context for fp32)."""
    if path.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=path.dtype)

