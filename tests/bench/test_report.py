"""``make bench``'s report: every finished section is written, a failed one is named."""

import json

import torch

from bench import report
from bench.machine import machine_info
from bench.run_bench import write_reports


def results_with_a_failed_section():
    stream = {"rate_hz": 30.0, "seconds": 2.0, "network": "paper", "sent": 60, "processed": 2,
              "dropped": 58, "latency": {"median": 2.1, "p95": 2.4},
              "model": {"median": 2.0, "p95": 2.2}, "rss_mb": [(0.0, 900.0), (1.0, 901.0)],
              "rss_growth_mb": 1.0, "rss_peak_mb": 901.0, "p95_bound_s": 4.05,
              "p95_within_bound": True}
    return {"quick": True, "date": "2026-11-28T00:00:00", "sections": "stream,train",
            "machine": machine_info(torch.device("cpu")), "stream": stream,
            "errors": {"train": "RuntimeError: no data"}}


def test_reports_keep_finished_sections_and_name_failed_ones(tmp_path):
    results = results_with_a_failed_section()
    paths = write_reports(results, tmp_path)
    assert {p.name for p in paths} == {"results.json", "results.md", "latency.png"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["stream"]["dropped"] == 58 and saved["elapsed_s"] > 0
    text = (tmp_path / "results.md").read_text()
    assert "**Section `train` failed:** RuntimeError: no data" in text
    assert "sent 60, processed 2, dropped 58" in text
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_markdown_without_sections_is_only_the_header():
    results = {"quick": False, "date": "d", "machine": machine_info(torch.device("cpu")),
               "elapsed_s": 1.0}
    text = report.markdown(results)
    assert text.startswith("# refseg benchmark (full run)") and "##" not in text


def test_markdown_gives_the_default_path_as_a_fraction_of_the_best_peak_and_node_vs_alone():
    stats = {"median": 0.02, "p95": 0.03}
    predict = [{"network": "paper", "path": "fp32", "default_path": False, "reason": "asked",
                "input": "512x512", "latency": stats, "frames_per_s": 50.0, "flop_per_s": 6e10,
                "best_peak_dtype": "float32", "fraction_of_best_peak": 0.4},
               {"network": "paper", "path": "bf16+channels_last+compile", "default_path": True,
                "reason": "bf16: the CPU has AMX", "input": "512x512", "latency": stats,
                "frames_per_s": 80.0, "flop_per_s": 9e10, "best_peak_dtype": "bfloat16",
                "fraction_of_best_peak": 0.62}]
    model = {"peak": {"fp32": {"flop_per_s": 1.5e11}, "bf16": {"flop_per_s": 2.7e12}},
             "flops": {}, "weights": {}, "forward": [], "predict": predict, "agreement": []}
    node = [{"input": "640x480", "frames": 10, "lost": 0, "end_to_end": stats,
             "end_to_end_fps": 50.0, "model": {"median": 0.022}, "overhead": stats,
             "model_alone": {"median": 0.020}, "inside_over_alone": 1.1,
             "middleware_floor": stats}]
    results = {"quick": False, "date": "d", "machine": machine_info(torch.device("cpu")),
               "elapsed_s": 1.0, "model": model, "node": node}
    text = report.markdown(results)
    assert "| paper | 512x512 | bf16+channels_last+compile (default) |" in text
    assert "| 62% (bfloat16) |" in text and "| 40% (float32) |" in text
    assert "- default path of `paper`: bf16: the CPU has AMX" in text
    assert "| 22.0 | 20.0 | 1.10 |" in text
    assert "load average" in text
