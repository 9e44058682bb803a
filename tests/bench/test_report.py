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
