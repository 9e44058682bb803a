"""One prepared check for a lent GPU (``bench/gpu_check.sh``): inference, training, torchrun.

Sections, each written to ``OUT/results_gpu.json`` and ``OUT/results_gpu.md`` as soon as it ends
(a run cut short keeps what it measured):

1. ``peak``: matrix-multiply peak per dtype (fp32 without TF32, tf32, fp16, bf16).
2. ``predict``: ``Segmenter.predict`` (batch 1, the node's default path ``precision: auto``,
   eager and ``compile: on``) and ``predict_batch`` of 32 frames; target: ``paper`` at 200
   frames/s or more.
3. ``train``: the training step's images/s for both presets; target: the default's at 1,000
   images/s or more.
4. ``torchrun``: a one-GPU ``torchrun`` (nccl) smoke run of ``refseg-train``.
5. ``agreement``: masks of the default path against fp32 on a synthetic split (IoU).
6. ``forward``: both presets' forward pass per numeric path at batch 1 and 32 (fp32, fp16 and
   bf16 channels_last; fp16 + ``torch.compile`` with CUDA graphs at batch 1), as a fraction of
   the peak.

``--dry-run`` runs every section on the CPU with few iterations and small inputs: it checks the
script, not the GPU (torchrun then uses gloo).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for entry in (str(REPO), str(REPO / "model")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import torch  # noqa: E402

from bench import model_bench as mb  # noqa: E402
from bench.machine import machine_info, matmul_peak  # noqa: E402
from bench.model_bench import frames_of  # noqa: E402
from bench.models import load_network, segmenter_of  # noqa: E402
from bench.stats import summarize, time_calls  # noqa: E402
from bench.train_bench import train_throughput  # noqa: E402
from refseg_model.fastpath import NumericPath, resolve_path  # noqa: E402
from refseg_model.fileio import atomic_write  # noqa: E402
from refseg_model.synth.writer import write_dataset  # noqa: E402

START = time.perf_counter()
TARGETS = {"paper_predict_fps": 200.0, "default_train_images_per_s": 1000.0}


def log(text: str) -> None:
    """Print a progress line with the time since the start."""
    print(f"[gpu_check {time.perf_counter() - START:6.1f} s] {text}", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "bench", help="folder of the results")
    p.add_argument("--dry-run", action="store_true",
                   help="on the CPU, few iterations, small inputs: checks the script")
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    p.add_argument("--networks", default="default,paper", help="comma-separated networks")
    return p.parse_args(argv)


def markdown(results: dict) -> str:
    """Return the markdown report of ``results``."""
    m = results["machine"]
    lines = [f"# refseg GPU check{' (dry run on the CPU)' if results['dry_run'] else ''}", "",
             f"Machine: **{m.get('gpu') or 'no GPU'}**, CPU {m['cpu']}, torch {m['torch']}, "
             f"CUDA {m.get('cuda')}. Run of {results['date']}, "
             f"{results.get('elapsed_s', 0):.0f} s.", ""]
    for name, err in results.get("errors", {}).items():
        lines += [f"**Section `{name}` failed:** {err}", ""]
    if "peak" in results:
        lines += ["Matrix-multiply peak: " + ", ".join(
            f"{k} {v['flop_per_s'] / 1e12:.1f} TFLOP/s" for k, v in results["peak"].items()), ""]
    if results.get("forward"):
        lines += ["| network | variant | batch | median ms | images/s | TFLOP/s | of peak |",
                  "|---|---|---|---|---|---|---|"]
        for r in results["forward"]:
            if "error" in r:
                lines.append(f"| {r['network']} | {r['variant']} | {r['batch']} | failed: "
                             f"{r['error']} | | | |")
                continue
            frac = f"{r['fraction_of_peak']:.0%} ({r['peak_dtype']})" if r.get(
                "fraction_of_peak") else "-"
            lines.append(f"| {r['network']} | {r['variant']} | {r['batch']} | "
                         f"{r['latency']['median'] * 1e3:.2f} | {r['images_per_s']:.1f} | "
                         f"{r['flop_per_s'] / 1e12:.1f} | {frac} |")
        lines.append("")
    if results.get("predict"):
        lines += ["`Segmenter` (preprocessing included), the default path:", "",
                  "| network | call | path | batch | median ms | frames/s |",
                  "|---|---|---|---|---|---|"]
        for r in results["predict"]:
            lines.append(f"| {r['network']} | {r['call']} | {r['path']} | {r['batch']} | "
                         f"{r['latency']['median'] * 1e3:.2f} | {r['frames_per_s']:.1f} |")
        lines.append("")
    if results.get("agreement"):
        lines += ["| network | path | samples | overall IoU vs fp32 | min IoU |",
                  "|---|---|---|---|---|"]
        for r in results["agreement"]:
            lines.append(f"| {r['network']} | {r['path']} | {r['samples']} | "
                         f"{r['overall_iou']:.4f} | {r['min_iou']:.4f} |")
        lines.append("")
    if results.get("train"):
        lines += ["| network | batch | s/step | images/s |", "|---|---|---|---|"]
        for r in results["train"]:
            lines.append(f"| {r['network']} | {r['batch']} | {r['step']['median']:.4f} | "
                         f"{r['images_per_s']:.1f} |")
        lines.append("")
    if "torchrun" in results:
        t = results["torchrun"]
        lines += [f"torchrun smoke run ({t['backend']}): exit {t['returncode']} in "
                  f"{t['seconds']:.0f} s, checkpoint written: {t['checkpoint']}.", ""]
    if results.get("targets"):
        lines += ["Targets: " + "; ".join(f"{k} {v}" for k, v in results["targets"].items()), ""]
    return "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> None:
    """Write ``results_gpu.json`` and ``results_gpu.md``."""
    results["elapsed_s"] = time.perf_counter() - START
    atomic_write(out / "results_gpu.json", json.dumps(results, indent=1, default=str) + "\n")
    atomic_write(out / "results_gpu.md", markdown(results))


def section_peak(device, dry: bool) -> dict:
    """Return the matmul peaks (TF32 measured apart from strict fp32)."""
    size = 512 if dry else 8192
    seconds = 0.2 if dry else 1.0
    peak = {}
    for key, dtype in (("fp32", torch.float32), ("fp16", torch.float16),
                       ("bf16", torch.bfloat16)):
        if dry and key == "fp16":
            continue
        peak[key] = matmul_peak(device, dtype, seconds=seconds, size=size)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        peak["tf32"] = matmul_peak(device, torch.float32, seconds=seconds, size=size)
        torch.backends.cuda.matmul.allow_tf32 = False
    for key, value in peak.items():
        log(f"  peak {key}: {value['flop_per_s'] / 1e12:.2f} TFLOP/s")
    return peak


def networks(dry: bool, names=("default", "paper")):
    """Yield ``(name, Network, flops)``; a dry run shrinks the paper network's input."""
    for name in names:
        net = load_network(name)
        if dry and name == "paper":
            net.config.input_width = net.config.input_height = 128
        yield name, net, mb.count_flops(net)["total"]


def section_forward(device, dry: bool, peak: dict, nets) -> list:
    """Time the forward pass per numeric path at batch 1 and 32."""
    low = "fp16" if device.type == "cuda" else "bf16"
    variants = [{"path": NumericPath("fp32", False)}, {"path": NumericPath(low, True)}]
    if device.type == "cuda":
        variants.append({"path": NumericPath("bf16", True)})
    variants.append({"path": NumericPath(low, True), "compile": True, "batches": (1,)})
    batches = (1, 2) if dry else (1, 32)
    rows = []
    for name, net, flops in nets:
        for variant in variants:
            for batch in variant.get("batches", batches):
                rows.append(mb.time_forward(net, device, variant, batch, peak, flops,
                                            2.0 if dry else 10.0, log))
    return rows


def section_predict(device, dry: bool, nets, frames) -> list:
    """Time ``Segmenter.predict`` (batch 1) and ``predict_batch`` (32) on the default path."""
    rows = []
    batch = 2 if dry else 32
    for name, net, _ in nets:
        for compile_ in ("auto",) if dry else ("auto", "on"):  # CPU compiles take minutes
            seg = segmenter_of(net, device, "auto", None, compile_)
            path = seg.numeric_path
            if compile_ == "on" and not path.compiled:  # the compile failed: say why, go on
                log(f"  {name}: compile on kept eager: {path.reason}")
            rgb, expression = frames[0]
            sync = (lambda: torch.cuda.synchronize(device)) if (
                device.type == "cuda") else (lambda: None)
            one = summarize(time_calls(lambda: seg.predict(rgb, expression), 3,
                                       5 if dry else 200, sync, 3.0 if dry else 20.0))
            rows.append({"network": name, "call": "predict", "compile": compile_,
                         "path": path.name, "reason": path.reason, "batch": 1, "latency": one,
                         "frames_per_s": 1.0 / one["median"]})
            log(f"  {name} predict {path.name}: {one['median'] * 1e3:.2f} ms "
                f"({1.0 / one['median']:.0f} frames/s); {path.reason}")
            if compile_ == "auto":
                images = [f[0] for f in frames] * (batch // len(frames) + 1)
                texts = [f[1] for f in frames] * (batch // len(frames) + 1)
                many = summarize(time_calls(
                    lambda: seg.predict_batch(images[:batch], texts[:batch]), 1,
                    3 if dry else 20, sync, 3.0 if dry else 20.0))
                rows.append({"network": name, "call": "predict_batch", "compile": compile_,
                             "path": path.name, "reason": path.reason, "batch": batch,
                             "latency": many, "frames_per_s": batch / many["median"]})
                log(f"  {name} predict_batch {batch} {path.name}: "
                    f"{batch / many['median']:.0f} frames/s")
            seg.release()
    return rows


def section_agreement(device, nets, frames) -> list:
    """Return the masks' IoU of the default path against fp32."""
    path = resolve_path("auto", None, device)
    triples = [(rgb, expression, str(i)) for i, (rgb, expression) in enumerate(frames)]
    rows = []
    for name, net, _ in nets:
        row = mb.agreement(net, device, path, triples)
        rows.append(row)
        log(f"  agreement {name} {path.name}: overall IoU {row['overall_iou']:.4f}")
    return rows


def section_train(device, dry: bool, data_root, names) -> list:
    """Return the training step's images/s of both presets."""
    plans = [("default", 4, 2), ("paper", 1, 1)] if dry else [("default", 64, 20),
                                                              ("paper", 16, 10)]
    return [train_throughput(name, data_root, device, batch, steps, log)
            for name, batch, steps in plans if name in names]


def section_torchrun(device, dry: bool, data_root, tmp: Path) -> dict:
    """Run ``refseg-train`` under a one-process ``torchrun`` (nccl on CUDA, gloo on a CPU)."""
    out = tmp / "torchrun_run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
           "-m", "refseg_model.cli.train", "--dataset", "synthetic", "--data-root",
           str(data_root), "--out", str(out), "--config", "tabletop", "--device",
           "cuda" if device.type == "cuda" else "cpu", "--stage", "lowres", "--max-iters",
           "4" if dry else "40", "--checkpoint-every", "4" if dry else "40", "--no-pretrained"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "model"),
                                                       os.environ.get("PYTHONPATH", "")]))
    tick = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    seconds = time.perf_counter() - tick
    checkpoint = (out / "last.pt").is_file()
    log(f"  torchrun: exit {proc.returncode} in {seconds:.0f} s, last.pt written: {checkpoint}")
    return {"backend": "nccl" if device.type == "cuda" else "gloo", "returncode": proc.returncode,
            "seconds": seconds, "checkpoint": checkpoint, "command": " ".join(cmd),
            "output_tail": (proc.stdout + proc.stderr)[-3000:]}


def main(argv=None) -> int:
    """Run every section; return 1 if one failed."""
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        log("no CUDA device here: run with --dry-run to check the script on a CPU")
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    info = machine_info(device)
    info["cuda"] = torch.version.cuda
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"dry_run": args.dry_run, "machine": info, "targets": {},
               "date": datetime.datetime.now().isoformat(timespec="seconds")}
    log(f"device {device} ({info.get('gpu') or info['cpu']})")
    write(results, args.out)  # the machine, even if nothing else finishes
    failed = []
    with tempfile.TemporaryDirectory(prefix="refseg-gpu-") as tmp:
        tmp = Path(tmp)
        data_root = tmp / "synthetic"
        write_dataset(data_root, 8 if args.dry_run else 48, seed=7, width=640, height=480,
                      test_frac=0.25, progress=False)
        frames = [(rgb, text) for rgb, text, _ in frames_of(data_root, None, 8)]
        loaded: list = []

        def nets():  # loaded by the first section that needs them (a failure is recorded)
            if not loaded:
                names = [n.strip() for n in args.networks.split(",") if n.strip()]
                loaded.extend(networks(args.dry_run, names))
            return loaded
        sections = [  # the targets first: a run cut short keeps them
            ("peak", lambda: section_peak(device, args.dry_run)),
            ("predict", lambda: section_predict(device, args.dry_run, nets(), frames)),
            ("train", lambda: section_train(device, args.dry_run, data_root,
                                            args.networks.split(","))),
            ("torchrun", lambda: section_torchrun(device, args.dry_run, data_root, tmp)),
            ("agreement", lambda: section_agreement(device, nets(), frames)),
            ("forward", lambda: section_forward(device, args.dry_run, results.get("peak", {}),
                                                nets())),
        ]
        for name, run in sections:
            if name in skip:
                continue
            log(f"section {name}")
            try:
                results[name] = run()
            except Exception as err:  # noqa: BLE001 - recorded; the next sections still run
                failed.append(name)
                results.setdefault("errors", {})[name] = f"{type(err).__name__}: {err}"[:500]
                log(f"{name}: FAILED {type(err).__name__}: {err}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            paper = [r for r in results.get("predict", []) if r["network"] == "paper"
                     and r["call"] == "predict"]
            if paper:
                best = max(r["frames_per_s"] for r in paper)
                results["targets"]["paper predict batch 1"] = (
                    f"{best:.0f} frames/s (target {TARGETS['paper_predict_fps']:.0f}: "
                    f"{'met' if best >= TARGETS['paper_predict_fps'] else 'NOT met'})")
            train = [r for r in results.get("train", []) if r["network"] == "default"]
            if train:
                ips = train[0]["images_per_s"]
                results["targets"]["default training"] = (
                    f"{ips:.0f} images/s (target {TARGETS['default_train_images_per_s']:.0f}: "
                    f"{'met' if ips >= TARGETS['default_train_images_per_s'] else 'NOT met'})")
            write(results, args.out)
    log(f"wrote {args.out / 'results_gpu.json'} and {args.out / 'results_gpu.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
