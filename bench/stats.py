"""Timing helpers: repeat a call, keep every duration, summarise as median and p95."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def summarize(seconds: list[float]) -> dict:
    """Return median, p95, mean, min (seconds) and the count of ``seconds``."""
    values = np.asarray(seconds, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "mean": float(values.mean()),
            "min": float(values.min()), "max": float(values.max())}


def time_calls(fn: Callable[[], object], warmup: int, iters: int, sync: Callable[[], None],
               max_seconds: float | None = None, pause: float = 0.0) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then up to ``iters`` times timed.

    Timing stops early (after at least two timed calls) once ``max_seconds`` have passed.
    ``pause``: seconds idle (untimed) before every call.
    """
    for _ in range(warmup):
        time.sleep(pause)
        fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(iters):
        time.sleep(pause)
        tick = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - tick)
        elapsed = time.perf_counter() - start
        if max_seconds is not None and len(times) >= 2 and elapsed > max_seconds:
            break
    return times
