"""The numeric path: reduced precision, channels-last memory, torch.compile.

``precision="auto"`` (the default of ``Segmenter``, ``refseg-eval``, ``refseg-predict``, the
node and ``refseg-train``) picks the fastest precision that keeps the answers on the device at
hand. :func:`auto_precision` is the one statement of that policy, for inference and training:

- CUDA: float16 for inference (tensor cores; more mantissa than bfloat16, so masks closer to
  float32), bfloat16 for training (fp16 where the GPU has none);
- a CPU with AMX: bfloat16 (several times the float32 matmul rate);
- a CPU with AVX-512 BF16 but no AMX: for inference bfloat16 only if a 30 ms matmul probe
  measures it faster than float32 (on a Xeon whose hypervisor hides AMX, oneDNN's AVX-512 BF16
  kernels run at about half the float32 rate, so float32 is kept there); for training float32
  (the bf16 convolution backward is slower);
- anything else: float32.

Reduced precision converts the weights of the convolutions (and linear layers) once, when the
model is prepared, instead of casting them inside autocast on every forward pass; autocast still
wraps the forward pass so the numerically sensitive operations (norms, the final sigmoid) and the
layers that stay float32 (the expression encoder's embedding and LSTM: oneDNN has no bfloat16
LSTM for float32 inputs, and it is a negligible share of the time) see float32. Batch norm keeps
its float32 statistics. Masks agree with float32 at IoU >= 0.99 (``tests/model/test_fastpath.py``,
``make bench``).

``channels_last`` (NHWC; oneDNN's and the tensor cores' preferred layout) is on by default.

``compile="auto"`` counts the FLOPs of one forward pass when the model is prepared: a network of
:data:`COMPILE_MIN_FLOP` or more a frame (the ``paper`` VGG-16: 224.5 GFLOP) is compiled with
``torch.compile`` (inductor, weights frozen and pre-packed), both passes are timed, and the
faster of the two is kept (the ``paper`` network at 512x512: 4.8 s -> 2.7 s a frame in fp32 on one
core here; its compile takes about 30 s). Small networks (the shipped default: 1.8 GFLOP) stay
eager: compiling them costs tens of seconds at start for a few milliseconds a frame.

``NumericPath`` says how to run (and why it was chosen); :func:`resolve_path`,
:func:`prepare_model`, :func:`prepare_images`, :func:`autocast` and :func:`compile_if_faster`
apply it. :func:`configure_serving` sets up a process that serves frames: torch's thread pools
(:func:`configure_threads`) and the allocator (:func:`tune_allocator`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.flop_counter import FlopCounterMode

from .config import PRECISIONS  # the numeric paths, defined once

COMPILE_MODES = ("auto", "on", "off")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# A network of at least this many FLOPs a frame makes compile="auto" try torch.compile (a count,
# not a time: the decision does not depend on what else loads the machine).
COMPILE_MIN_FLOP = 20e9
# bf16 is chosen on an AVX-512 BF16 CPU without AMX only when the probe finds it this much faster.
BF16_MIN_SPEEDUP = 1.5  # a margin: a loaded machine skews the probe


@dataclass(frozen=True)
class NumericPath:
    """How the network runs: ``precision``, memory format, compiled or not, and why.

    Attributes:
        precision: ``"fp32"`` (no autocast), ``"bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA).
        channels_last: Keep the weights and the image batch in NHWC memory format.
        compiled: The batch-1 forward pass runs through ``torch.compile`` (inductor).
        reason: Why this path was chosen (logged by the node); not part of equality.
    """

    precision: str = "fp32"
    channels_last: bool = False
    compiled: bool = False
    reason: str = field(default="", compare=False)

    @property
    def dtype(self) -> torch.dtype:
        """The autocast dtype (``torch.float32`` when there is no autocast)."""
        return DTYPES[self.precision]

    @property
    def name(self) -> str:
        """A short label such as ``bf16+channels_last+compile``."""
        return (self.precision + ("+channels_last" if self.channels_last else "")
                + ("+compile" if self.compiled else ""))


def cpu_flags() -> set[str]:
    """Return the CPU flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cpu_bf16_kind() -> str | None:
    """Return ``"amx"``, ``"avx512_bf16"`` or ``None``: the CPU's native bfloat16 dot products.

    Both the CPU flags and oneDNN (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) must agree.
    """
    flags = cpu_flags()
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = torch.backends.mkldnn.is_available()
    if not onednn:
        return None
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def cpu_has_fast_bf16() -> bool:
    """Tell whether this CPU has native bfloat16 dot products (AVX-512 BF16 or AMX)."""
    return cpu_bf16_kind() is not None


@functools.lru_cache(maxsize=1)
def bf16_matmul_speedup(size: int = 512, reps: int = 9) -> float:
    """Return the bfloat16 / float32 matrix-multiply rate on this CPU (best of ``reps`` each).

    On one thread (a partner thread descheduled by other load stalls a multi-threaded matmul
    and skews the ratio; the per-core ratio is what decides), interleaved, best of ``reps``:
    about 50 ms on a CPU with AVX-512 BF16; measured once per process (cached).
    """
    a32 = torch.randn(size, size)
    b32 = torch.randn(size, size)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    best = {"fp32": float("inf"), "bf16": float("inf")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _probe(a32, b32, a16, b16, reps, best)
    finally:
        torch.set_num_threads(threads)
    return best["fp32"] / best["bf16"]


def _probe(a32, b32, a16, b16, reps: int, best: dict) -> None:
    with torch.inference_mode():
        torch.mm(a32, b32)
        torch.mm(a16, b16)
        for _ in range(reps):  # interleaved: a load that comes and goes hits both alike
            for key, (a, b) in (("fp32", (a32, b32)), ("bf16", (a16, b16))):
                tick = time.perf_counter()
                torch.mm(a, b)
                best[key] = min(best[key], time.perf_counter() - tick)


def auto_precision(device_type: str, *, training: bool = False, cpu_bf16: str | None = None,
                   bf16_speedup: Callable[[], float] = lambda: 0.0, cuda_bf16: bool = True,
                   device_name: str = "CUDA") -> tuple[str, str]:
    """Return ``(precision, reason)``: the policy of ``precision="auto"``, for given hardware.

    The one home of the policy, for inference and training alike; :func:`choose_precision`
    feeds it the facts of this machine. ``cpu_bf16`` is :func:`cpu_bf16_kind`'s answer;
    ``bf16_speedup`` measures the bf16 / fp32 matmul rate (called only where it decides).

    - CUDA: inference fp16 (tensor cores; more mantissa than bf16, so masks closer to float32);
      training bf16 (range enough for gradients without a loss scaler), fp16 where the GPU
      has no bf16 (``cuda_bf16``).
    - A CPU with AMX: bf16.
    - A CPU with AVX-512 BF16 but no AMX: inference bf16 only if the matmul probe measures
      it :data:`BF16_MIN_SPEEDUP` x faster than fp32; training fp32 (oneDNN's bf16 convolution
      *backward* measured 2.7x slower than fp32 on an Intel Xeon, 2 cores, 2026-12-01: the
      default's training step 0.79 s fp32 against 2.1 s bf16).
    - Any other CPU: fp32 (bf16 would be emulated).
    """
    if device_type == "cuda":
        if not training:
            return "fp16", f"fp16 on {device_name} (tensor cores)"
        if cuda_bf16:
            return "bf16", f"bf16 on {device_name} (training: bf16's range needs no loss scaling)"
        return "fp16", f"fp16 on {device_name} (training: the GPU has no bf16)"
    if cpu_bf16 == "amx":
        return "bf16", "bf16: the CPU has AMX (amx_bf16) and oneDNN supports it"
    if cpu_bf16 == "avx512_bf16":
        if training:
            return "fp32", ("fp32: the CPU has AVX-512 BF16 but no AMX, where oneDNN's bf16 "
                            "convolution backward is slower than fp32")
        speedup = bf16_speedup()
        if speedup >= BF16_MIN_SPEEDUP:
            return "bf16", (f"bf16: the CPU has AVX-512 BF16 (no AMX) and a matmul probe ran "
                            f"bf16 {speedup:.2f}x the fp32 rate")
        return "fp32", (f"fp32: the CPU has AVX-512 BF16 but no AMX, and a matmul probe ran bf16 "
                        f"at only {speedup:.2f}x the fp32 rate (below {BF16_MIN_SPEEDUP}x)")
    return "fp32", "fp32: the CPU has neither AMX nor AVX-512 BF16 (bf16 would be emulated)"


def choose_precision(device: str | torch.device = "cpu", *,
                     training: bool = False) -> tuple[str, str]:
    """Return ``(precision, reason)``: what ``precision="auto"`` means on ``device`` here."""
    device = torch.device(device)
    if device.type == "cuda":
        available = torch.cuda.is_available()
        return auto_precision(
            "cuda", training=training,
            cuda_bf16=available and torch.cuda.is_bf16_supported(),
            device_name=torch.cuda.get_device_name(device) if available else "CUDA")
    return auto_precision(device.type, training=training, cpu_bf16=cpu_bf16_kind(),
                          bf16_speedup=bf16_matmul_speedup)


def resolve_path(precision: str = "auto", channels_last: bool | None = None,
                 device: str | torch.device = "cpu", *, training: bool = False) -> NumericPath:
    """Check ``precision`` for ``device`` and return the ``NumericPath`` (``compiled`` False).

    ``precision="auto"`` is resolved by :func:`choose_precision` (``training``: the policy of
    a training step, forward and backward); ``channels_last=None`` means on. Raises
    ``ValueError`` for an unknown precision, or ``fp16`` on a CPU (half-precision autocast on a
    CPU is slower than float32 and loses range; use ``bf16`` there).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    device = torch.device(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; on a CPU use bf16 (or fp32)")
    if precision == "auto":
        precision, reason = choose_precision(device, training=training)
    else:
        reason = f"{precision}: asked for"
    channels_last = True if channels_last is None else bool(channels_last)
    return NumericPath(precision, channels_last, False, reason)


LOW_PRECISION_LAYERS = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
FLOAT32_LAYERS = (torch.nn.RNNBase, torch.nn.Embedding)


def fold_batchnorm(model: torch.nn.Module) -> int:
    """Fold each batch norm that follows a convolution in an ``nn.Sequential`` into it (in place).

    In eval mode a ``BatchNorm2d`` is a per-channel scale and shift of its convolution's output,
    so ``torch.nn.utils.fusion.fuse_conv_bn_eval`` puts it into the convolution's weight and
    bias and the norm becomes an ``nn.Identity`` (the same function to rounding; the layer
    indices of the ``Sequential`` are kept, so backbone taps still point at the same layers).
    One memory pass fewer per folded layer: the default's 9 norms were 6% of a 640x480 frame's
    time on the CPU. Only for inference: a folded network trains without its norms, so a model
    in training mode raises ``ValueError``. Norms outside a conv-norm pair of a ``Sequential``
    (a ResNet block's ``conv1`` / ``bn1`` attributes) are left as they are. Returns how many
    norms were folded.
    """
    if model.training:
        raise ValueError("fold_batchnorm folds eval-mode statistics: call model.eval() first")
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, torch.nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = seq._modules[first], seq._modules[second]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d) \
                    and norm.track_running_stats and norm.num_features == conv.out_channels:
                seq._modules[first] = fuse_conv_bn_eval(conv, norm)
                seq._modules[second] = torch.nn.Identity()
                folded += 1
    return folded


def prepare_model(model: torch.nn.Module, path: NumericPath) -> torch.nn.Module:
    """Put ``model``'s weights in the memory format and precision of ``path`` (in place).

    For ``bf16`` / ``fp16`` the weights of convolutions and linear layers are converted once
    (autocast would cast them on every forward pass); batch norm, the embedding and the
    recurrent layers stay float32 (the network runs its LSTM outside autocast). Parameter names are
    unchanged. Returns ``model``.
    """
    if path.channels_last:
        model.to(memory_format=torch.channels_last)
    if path.precision != "fp32":
        float32_ids = {id(p) for m in model.modules() if isinstance(m, FLOAT32_LAYERS)
                       for p in m.parameters()}
        for module in model.modules():
            if isinstance(module, LOW_PRECISION_LAYERS):
                for param in module.parameters(recurse=False):
                    if id(param) not in float32_ids:
                        param.data = param.data.to(path.dtype)
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


class _Logits(torch.nn.Module):
    """``model.predict_logits(images, tokens, stage=...)`` as a module (what is compiled)."""

    def __init__(self, model: torch.nn.Module, stage: str) -> None:
        super().__init__()
        self.model = model
        self.stage = stage

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.predict_logits(images, tokens, stage=self.stage)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn, calls: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(calls):
        tick = time.perf_counter()
        fn()
        _synchronize(device)
        best = min(best, time.perf_counter() - tick)
    return best


def compile_if_faster(model: torch.nn.Module, path: NumericPath, images: torch.Tensor,
                      tokens: torch.Tensor, stage: str, mode: str = "auto"):
    """Return ``(runner, path)``: a compiled batch-1 forward if it pays off, else ``None``.

    ``images`` / ``tokens`` are an example batch of 1 (prepared by :func:`prepare_images`).
    ``mode``: ``off`` (no compile), ``on`` (compile; keep it unless it fails), ``auto``
    (compile a network of :data:`COMPILE_MIN_FLOP` or more a frame, keep the faster pass).
    The returned path has ``compiled`` set and its ``reason`` extended with what was measured.
    A compile that fails (no C++ compiler, an operator inductor cannot lower) keeps the eager
    model and says why.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose one of {COMPILE_MODES}")
    if mode == "off":
        return None, path
    device = images.device
    eager = _Logits(model, stage)

    def run(fn):
        with torch.inference_mode(), autocast(device, path):
            return fn(images, tokens)

    counter = FlopCounterMode(display=False)
    with counter:  # also the warm-up pass
        run(eager)
    flop = counter.get_total_flops()
    if mode == "auto" and flop < COMPILE_MIN_FLOP:
        return None, replace(path, reason=f"{path.reason}; eager ({flop / 1e9:.1f} GFLOP a "
                                          f"frame, no compile below {COMPILE_MIN_FLOP / 1e9:.0f} "
                                          "GFLOP)")
    eager_s = _best_time(lambda: run(eager), 1, device)
    import torch._inductor.config as inductor_config

    try:
        tick = time.perf_counter()
        compiled = torch.compile(eager, dynamic=False)
        with inductor_config.patch(freezing=True):  # weights folded and pre-packed
            run(compiled)
        compile_s = time.perf_counter() - tick
        compiled_s = _best_time(lambda: run(compiled), 2, device)
    except Exception as err:  # noqa: BLE001 - any compile failure falls back to eager
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        return None, replace(path, reason=f"{path.reason}; torch.compile failed "
                                          f"({type(err).__name__}: {first}), eager kept")
    figures = (f"eager {1e3 * eager_s:.0f} ms, compiled {1e3 * compiled_s:.0f} ms a frame, "
               f"compile {compile_s:.0f} s")
    if mode == "auto" and compiled_s >= eager_s:
        return None, replace(path, reason=f"{path.reason}; eager kept ({figures})")
    return compiled, replace(path, compiled=True, reason=f"{path.reason}; compiled ({figures})")


def configure_threads(threads: int | None = None, interop: int = 1,
                      opencv_threads: int | None = 1) -> dict:
    """Set the thread pools of a process that serves frames; return what was set (to log).

    ``threads``: torch intra-op threads, by default the CPUs this process may run on
    (``os.sched_getaffinity``, which respects ``taskset`` and container limits; torch's own
    default counts the machine's cores). ``interop``: torch's inter-op pool (unused by
    inference; one thread instead of one per core). ``opencv_threads``: OpenCV's pool (the
    letterbox resize and image conversions are small; a second pool of spinning threads
    competes with torch's for the same cores); ``None`` leaves it alone. Call it before the
    first inference; the inter-op setting is skipped (and said so) when it is too late.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    threads = max(1, int(threads or available))
    torch.set_num_threads(threads)
    done = {"torch_threads": torch.get_num_threads(), "cpus": available}
    try:
        if torch.get_num_interop_threads() != interop:
            torch.set_num_interop_threads(interop)
        done["interop_threads"] = torch.get_num_interop_threads()
    except RuntimeError:  # inter-op work already started: the pool is fixed
        done["interop_threads"] = torch.get_num_interop_threads()
    if opencv_threads is not None:
        try:
            cv2.setNumThreads(int(opencv_threads))
            done["opencv_threads"] = cv2.getNumThreads()
        except ImportError:
            pass
    return done


# glibc malloc: blocks above the mmap threshold are mmap'ed and unmapped on free, and the heap top
# above the trim threshold is given back to the system, so every frame faults its activations
# in again (about 4,000 page faults a frame for the default model at 640x480, zeroed pages).
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 512 << 20


def tune_allocator(mmap_threshold: int = MMAP_THRESHOLD,
                   trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Keep freed activation memory in the process (glibc ``mallopt``); True when it applied.

    With the thresholds raised, the buffers of one frame are reused by the next instead of being
    returned to the system and faulted in again; the resident memory stays at the peak of one
    frame. A no-op (False) where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_mmap_threshold, int(mmap_threshold))
                and mallopt(m_trim_threshold, int(trim_threshold)))


def configure_serving(threads: int | None = None) -> dict:
    """Set up a process that serves frames (the node, the benchmark); return what was set.

    :func:`configure_threads` (torch intra-op threads = the CPUs this process may use, one
    inter-op thread, one OpenCV thread) and :func:`tune_allocator`.
    """
    done = configure_threads(threads)
    done["malloc_tuned"] = tune_allocator()
    return done


def describe_threads(done: dict) -> str:
    """Return ``configure_threads``'s (or ``configure_serving``'s) result as one log line."""
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in done.items())
