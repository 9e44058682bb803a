"""Write the benchmark results: ``results.json``, ``results.md`` and ``latency.png``."""

from __future__ import annotations

import json
from pathlib import Path

from refseg_model.fileio import atomic_open, atomic_write

from .machine import machine_label


def write_json(results: dict, out: Path) -> Path:
    """Write ``results.json``."""
    path = out / "results.json"
    atomic_write(path, json.dumps(results, indent=1, default=str) + "\n")
    return path


def _ms(stats: dict | None, key: str = "median") -> str:
    if not stats or key not in stats:
        return "-"
    return f"{stats[key] * 1e3:.1f}"


def markdown(results: dict) -> str:
    """Return the markdown report."""
    info = results["machine"]
    lines = [f"# refseg benchmark ({'quick' if results['quick'] else 'full'} run)", "",
             f"Machine: **{machine_label(info)}**; CPU flags {', '.join(info['cpu_flags'])}; "
             f"torch {info['torch']}, device `{info['device']}`. Run of {results['date']}, "
             f"{results['elapsed_s']:.0f} s.", ""]
    for section, error in results.get("errors", {}).items():
        lines += [f"**Section `{section}` failed:** {error}", ""]
    model = results.get("model")
    if model:
        lines += ["## Model", "", "Dense-kernel peak measured in this run (the better of a "
            "square matmul and, on a CPU, a channels-last 3x3 convolution): " + ", ".join(
            f"{k} {v['flop_per_s'] / 1e9:.0f} GFLOP/s ({v.get('kernel', 'matmul')})"
            for k, v in model["peak"].items()) + ".",
            "", "| network | input | GFLOP (batch 1) | weights |", "|---|---|---|---|"]
        for name, flops in model["flops"].items():
            lines.append(f"| {name} | {flops['input']} | {flops['total'] / 1e9:.1f} | "
                         f"{model['weights'][name]} |")
        lines += ["", "Network forward pass (``highres`` logits):", "",
                  "| network | variant | batch | median ms | p95 ms | images/s | GFLOP/s | "
                  "of peak |", "|---|---|---|---|---|---|---|---|"]
        for row in model["forward"]:
            if "error" in row:
                lines.append(f"| {row['network']} | {row['variant']} | {row['batch']} | "
                             f"failed: {row['error']} | | | | |")
                continue
            frac = f"{row['fraction_of_peak']:.0%} ({row['peak_dtype']})" if row.get(
                "fraction_of_peak") else "-"
            extra = f" (compile {row['compile_s']:.0f} s)" if "compile_s" in row else ""
            lines.append(f"| {row['network']} | {row['variant']}{extra} | {row['batch']} | "
                         f"{_ms(row['latency'])} | {_ms(row['latency'], 'p95')} | "
                         f"{row['images_per_s']:.2f} | {row['flop_per_s'] / 1e9:.1f} | {frac} |")
        lines += ["", "`Segmenter.predict` (preprocessing + forward + back to the frame size), "
                  "batch 1; the node's default path (`precision: auto`) next to fp32, as a "
                  "fraction of the best dense-kernel peak of this run:", "",
                  "| network | frame | path | median ms | p95 ms | frames/s | GFLOP/s | "
                  "of best peak |", "|---|---|---|---|---|---|---|---|"]
        for row in model["predict"]:
            label = row["path"] + (" (default)" if row.get("default_path") else "")
            frac = (f"{row['fraction_of_best_peak']:.0%} ({row['best_peak_dtype']})"
                    if "fraction_of_best_peak" in row else "-")
            rate = f"{row['flop_per_s'] / 1e9:.1f}" if "flop_per_s" in row else "-"
            lines.append(f"| {row['network']} | {row['input']} | {label} | "
                         f"{_ms(row['latency'])} | {_ms(row['latency'], 'p95')} | "
                         f"{row['frames_per_s']:.1f} | {rate} | {frac} |")
        reasons = {row["network"]: row["reason"] for row in model["predict"]
                   if row.get("default_path")}
        lines += [""] + [f"- default path of `{name}`: {reason}" for name, reason in
                         reasons.items()]
        lines += ["", "Masks of the fast path against float32 (synthetic test split):", "",
                  "| network | path | samples | overall IoU | min IoU |", "|---|---|---|---|---|"]
        for row in model["agreement"]:
            lines.append(f"| {row['network']} | {row['path']} | {row['samples']} | "
                         f"{row['overall_iou']:.4f} | {row['min_iou']:.4f} |")
        for prof in model.get("profile", []):
            passes = prof["parts"].get("passes", 1)
            lines += ["", f"Where the time goes: {prof['network']}, {prof['path']}, batch 1 "
                      f"({prof['parts']['total_s'] * 1e3:.0f} ms, the fastest of {passes} "
                      "passes; a part is the modules of it that ran, \"other\" the rest: the "
                      "folded first classifier layer, the landmark pass's glue):", "",
                      "| part | ms | GFLOP |", "|---|---|---|"]
            for part, sec in prof["parts"]["parts_s"].items():
                gflop = prof["flops_parts"].get(part, 0) / 1e9
                lines.append(f"| {part} | {sec * 1e3:.1f} | {gflop:.2f} |")
            lines += ["", "| operator | self ms | share | calls |", "|---|---|---|---|"]
            for op in prof["ops"]:
                lines.append(f"| `{op['op']}` | {op['self_ms']:.1f} | {op['share']:.0%} | "
                             f"{op['calls']} |")
    node = results.get("node")
    if node:
        lines += ["", "## Node overhead", "", "Image published -> `Segmentation` received "
                  "(separate processes), one frame in flight; overhead = end-to-end minus the "
                  "message's `inference_time`.", "",
                  "Middleware floor: the same image to an echo process (`bench/dds_echo.py`) "
                  "and its header back, no node code: what rclpy + Fast DDS cost.", "",
                  "Model alone: `Segmenter.predict` in the benchmark's process, back to back, and "
                  "paced (the node's idle gap between calls).", "",
                  "| frame | frames | end-to-end median ms | fps | model median ms | model alone "
                  "median ms | inside / alone | model alone paced ms | inside / paced | "
                  "overhead median ms | overhead p95 ms | middleware floor median ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in node:
            lines.append(f"| {row['input']} | {row['frames'] - row['lost']} | "
                         f"{_ms(row['end_to_end'])} | {row['end_to_end_fps']:.1f} | "
                         f"{_ms(row['model'])} | {_ms(row.get('model_alone'))} | "
                         f"{row.get('inside_over_alone', float('nan')):.2f} | "
                         f"{_ms(row.get('model_alone_paced'))} | "
                         f"{row.get('inside_over_paced', float('nan')):.2f} | "
                         f"{_ms(row['overhead'])} | "
                         f"{_ms(row['overhead'], 'p95')} | "
                         f"{_ms(row.get('middleware_floor'))} |")
    stream = results.get("stream")
    if stream:
        lines += ["", "## Streaming", "",
                  f"{stream['rate_hz']:.0f} Hz camera (640x480) for {stream['seconds']:.0f} s "
                  f"into the `{stream['network']}` network: sent {stream['sent']}, processed "
                  f"{stream['processed']}, dropped {stream['dropped']}. Latency median "
                  f"{_ms(stream['latency'])} ms, p95 {_ms(stream['latency'], 'p95')} ms (bound "
                  f"2 x model median + 50 ms = {stream.get('p95_bound_s', 0) * 1e3:.0f} ms: "
                  f"{'within' if stream.get('p95_within_bound') else 'NOT within'}); model "
                  f"median {_ms(stream['model'])} ms over its "
                  f"{stream.get('model_answers', '?')} answers (the tracker gave "
                  f"{stream.get('tracked_answers', '?')}). Node RSS peak "
                  f"{stream['rss_peak_mb']:.0f} MB, growth after warm-up (last - first sample) "
                  f"{stream['rss_growth_mb']:.1f} MB."]
    train = results.get("train")
    if train:
        lines += ["", "## Training throughput", "", "| network | preset | input | batch | "
                  "s/step | images/s |", "|---|---|---|---|---|---|"]
        for row in train:
            lines.append(f"| {row['network']} | {row['preset']} | {row['input']} | "
                         f"{row['batch']} | {row['step']['median']:.2f} | "
                         f"{row['images_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def write_markdown(results: dict, out: Path) -> Path:
    """Write ``results.md``."""
    path = out / "results.md"
    atomic_write(path, markdown(results))
    return path


def write_plot(results: dict, out: Path) -> Path | None:
    """Plot forward latency per variant (and the stream's latency / memory) to latency.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, stream = results.get("model"), results.get("stream")
    panels = int(bool(model)) + int(bool(stream))
    if not panels:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), squeeze=False)
    axes = list(axes[0])
    if model:
        ax = axes.pop(0)
        rows = [r for r in model["forward"] if "error" not in r and r["batch"] == 1]
        labels = [f"{r['network']}\n{r['variant']}" for r in rows]
        ax.barh(labels, [r["latency"]["median"] * 1e3 for r in rows],
                xerr=[[0] * len(rows), [(r["latency"]["p95"] - r["latency"]["median"]) * 1e3
                                        for r in rows]], color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlabel("forward latency, batch 1 (ms; bar median, whisker p95)")
        ax.tick_params(axis="y", labelsize=7)
    if stream:
        ax = axes.pop(0)
        times = [t for t, _ in stream["rss_mb"]]
        ax.plot(times, [m for _, m in stream["rss_mb"]], color="tab:red")
        ax.set_xlabel("stream time (s)")
        ax.set_ylabel("node RSS (MB)")
        ax.set_title(f"streaming {stream['rate_hz']:.0f} Hz: {stream['processed']} processed, "
                     f"{stream['dropped']} dropped", fontsize=9)
        ax.set_ylim(bottom=0)
    fig.suptitle(machine_label(results["machine"]), fontsize=9)
    fig.tight_layout()
    path = out / "latency.png"
    with atomic_open(path) as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return path
