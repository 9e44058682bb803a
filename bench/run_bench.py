"""``make bench``: latency, throughput and streaming figures of refseg on this machine.

Sections (``--sections``, default all): ``model`` (FLOPs, forward latency and throughput per
numeric path at batch 1 and 8, ``Segmenter.predict`` latency, fast-path agreement, profile),
``node`` (end-to-end latency and node overhead across processes at 640x480 and 1280x720),
``stream`` (30 Hz camera into the slow ``paper`` network: processed / dropped, latency, memory),
``train`` (training images/s of both presets). ``--quick`` checks the script in about a minute.

Writes ``OUT/results.json``, ``OUT/results.md`` and ``OUT/latency.png``; every figure carries
the machine it was measured on.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench import model_bench as mb  # noqa: E402
from bench import report  # noqa: E402
from bench.machine import dense_peak, machine_info, machine_label  # noqa: E402
from bench.models import load_network, write_checkpoint  # noqa: E402
from bench.node_bench import node_overhead, streaming  # noqa: E402
from bench.train_bench import train_throughput  # noqa: E402
from refseg_model.fastpath import configure_serving, describe_threads  # noqa: E402
from refseg_model.inference import resolve_device  # noqa: E402
from refseg_model.synth.writer import write_dataset  # noqa: E402

SECTIONS = ("model", "node", "stream", "train")


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "bench", help="folder of the results")
    p.add_argument("--quick", action="store_true", help="few iterations: checks the script")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--stream-seconds", type=float, default=None, help="streaming duration")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    return args


def log(text: str) -> None:
    """Print a progress line with the time since the start."""
    print(f"[bench {time.perf_counter() - START:6.1f} s] {text}", flush=True)


START = time.perf_counter()


def run_model(args, device, data_root) -> dict:
    """Run the ``model`` section."""
    quick = args.quick
    log("dense-kernel peak (the better of a square matmul and, on a CPU, a 3x3 convolution)")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if device.type == "cuda":
        dtypes["fp16"] = torch.float16
        torch.backends.cuda.matmul.allow_tf32 = False
    peak = {}
    for key, dtype in dtypes.items():
        peak[key] = dense_peak(device, dtype, seconds=0.5 if quick else 3.0,
                                size=1024 if quick and device.type == "cpu" else None)
        rates = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peak[key].get("rates", {}).items())
        log(f"  {key}: {peak[key]['flop_per_s'] / 1e9:.0f} GFLOP/s ({peak[key]['kernel']}"
            + (f"; {rates} GFLOP/s" if rates else "") + ")")
    result = {"peak": peak, "flops": {}, "weights": {}, "forward": [], "predict": [],
              "agreement": [], "profile": []}
    fast = mb.fast_path_for(device)
    result["fast_path"] = fast.name
    log(f"fast path on {device}: {fast.name}")
    variants = mb.forward_variants(device, quick, compile_=not (quick or args.no_compile))
    frames_640 = mb.frames_of(data_root, (640, 480), 2 if quick else 40)
    frames_512 = mb.frames_of(data_root, (512, 512), 1 if quick else 4)
    for name in ("default", "paper"):
        net = load_network(name)
        result["weights"][name] = f"{net.preset} preset, {net.weights}"
        flops = mb.count_flops(net)
        result["flops"][name] = flops
        height, width = net.config.input_shape
        log(f"{name}: {net.preset} {net.config.backbone} {width}x{height}px, "
            f"{flops['total'] / 1e9:.1f} GFLOP per image, {net.weights}")
        budget = (1.0 if quick else (20.0 if name == "paper" else 8.0))
        for variant in variants:
            batches = variant.get("batches", (1,) if quick and name == "paper" else (1, 8))
            if variant.get("emulated"):  # bf16 without hardware support: 5-20x slower
                if quick and name == "paper":
                    continue
                batches = (1,)
            for batch in batches:
                result["forward"].append(mb.time_forward(net, device, variant, batch, peak,
                                                         flops["total"], budget, log))
        frames = frames_640 if name == "default" else frames_512
        runs = [(path, frames) for path in (mb.NumericPath("fp32", False), None)]
        if name == "default":  # a RealSense colour stream's 16:9 default, on the default path
            runs.append((None, mb.frames_of(data_root, (1280, 720), 2 if quick else 10)))
        for path, timed in runs:  # path None: the node's default path
            row = mb.predict_latency(net, device, path, timed, 5 if quick else 50, budget,
                                     flops["total"], peak)
            result["predict"].append(row)
            log(f"  predict {name} {row['input']} {row['path']}"
                f"{' (default path)' if path is None else ''}: median "
                f"{row['latency']['median'] * 1e3:.1f} ms ({row['frames_per_s']:.1f} frames/s, "
                f"{row['fraction_of_best_peak']:.0%} of the best peak, "
                f"{row['best_peak_dtype']})" + (f"; {row['reason']}" if path is None else ""))
        agree_path = fast if fast.precision != "fp32" else mb.NumericPath(
            "bf16", True) if name == "default" else fast
        row = mb.agreement(net, device, agree_path, frames)
        result["agreement"].append(row)
        log(f"  agreement {name} {agree_path.name} vs fp32: overall IoU "
            f"{row['overall_iou']:.4f}, min {row['min_iou']:.4f} over {row['samples']} samples")
        if name == "paper" or not quick:
            for path in dict.fromkeys([mb.NumericPath("fp32", False), fast]):
                prof = {"network": name, "path": path.name,
                        "parts": mb.time_parts(net, device, path),
                        "ops": mb.profile_ops(net, device, path),
                        "flops_parts": flops["parts"]}
                result["profile"].append(prof)
                top = ", ".join(f"{o['op']} {o['share']:.0%}" for o in prof["ops"][:3])
                log(f"  profile {name} {path.name}: {top}")
        del net
    return result


def run_node(args, out_tmp: Path, log_dir: Path) -> list:
    """Run the ``node`` section (the default model)."""
    ckpt = write_checkpoint(load_network("default"), out_tmp / "default.pt")
    log(f"node overhead: node with {ckpt.name}")
    sizes = [(640, 480), (1280, 720)]
    return node_overhead(ckpt, log_dir, sizes, 10 if args.quick else 100, log)


def run_stream(args, out_tmp: Path, log_dir: Path) -> dict:
    """Run the ``stream`` section (the paper network: slower than 30 Hz on a CPU)."""
    log("stream: writing the paper network's checkpoint")
    ckpt = write_checkpoint(load_network("paper"), out_tmp / "paper.pt")
    seconds = args.stream_seconds or (10.0 if args.quick else 60.0)
    log(f"stream: 30 Hz for {seconds:.0f} s into the paper network")
    result = streaming(ckpt, log_dir, seconds, 30.0, log)
    result["network"] = "paper"
    ckpt.unlink(missing_ok=True)
    return result


def run_train(args, device, data_root) -> list:
    """Run the ``train`` section."""
    gpu = device.type == "cuda"
    plans = [("default", 8, 2 if args.quick else 6),
             ("paper", 10 if gpu else (1 if args.quick else 2), 1 if args.quick else 3)]
    return [train_throughput(name, data_root, device, batch, steps, log)
            for name, batch, steps in plans]


def write_reports(results: dict, out: Path) -> list:
    """Write results.json, results.md and latency.png (each atomically); return their paths."""
    results["elapsed_s"] = time.perf_counter() - START
    return [report.write_json(results, out), report.write_markdown(results, out),
            report.write_plot(results, out)]


def main(argv=None) -> int:
    """Run the selected sections and write the results."""
    args = parse_args(argv)

    # The node's set-up (threads, allocator): figures "alone" compare with the node's.
    serving = configure_serving(args.threads)
    device = resolve_device(args.device)
    info = machine_info(device)
    info["serving"] = describe_threads(serving)
    log(f"machine: {machine_label(info)}; {info['serving']}; sections {args.sections}"
        f"{' (quick)' if args.quick else ''}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"quick": args.quick, "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "machine": info, "sections": args.sections}
    with tempfile.TemporaryDirectory(prefix="refseg-bench-") as tmp:
        tmp = Path(tmp)
        data_root = tmp / "synthetic"
        log("writing a synthetic dataset (640x480)")
        write_dataset(data_root, 8 if args.quick else 24, seed=7, width=640, height=480,
                      test_frac=0.4, progress=False)
        runners = {"model": lambda: run_model(args, device, data_root),
                   "node": lambda: run_node(args, tmp, tmp),
                   "stream": lambda: run_stream(args, tmp, tmp),
                   "train": lambda: run_train(args, device, data_root)}
        failed, paths = [], []
        for name in [n for n in SECTIONS if n in args.sections]:
            try:
                results[name] = runners[name]()
            except Exception as err:  # noqa: BLE001 - recorded; the other sections still run
                failed.append(name)
                results.setdefault("errors", {})[name] = f"{type(err).__name__}: {err}"
                log(f"{name}: FAILED: {type(err).__name__}: {err}")
            # Written after every section: a killed run keeps what it measured.
            paths = write_reports(results, args.out)
    log("wrote " + ", ".join(str(p) for p in paths if p))
    if failed:
        log(f"sections that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
