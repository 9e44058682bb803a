"""The stream section's summary: the latency bound from the model's own answers, real growth."""

import pytest

from bench.node_bench import stream_summary

MS = 1_000_000


def answers(model_seconds):
    """One answer per frame: sent at i * 33 ms, answered 60 ms later, with its model time."""
    return [(i * 33 * MS, i * 33 * MS + 60 * MS, m) for i, m in enumerate(model_seconds)]


def test_the_bound_comes_from_the_models_answers_not_the_trackers():
    # 10 model answers of 0.2 s, 30 tracked ones (model time 0): the median of all is 0.
    got = answers([0.2] * 10 + [0.0] * 30)
    r = stream_summary(4.0, 30.0, [g[0] for g in got] + [99], got, [(0.0, 1.0), (3.0, 1.0)])
    assert (r["sent"], r["processed"], r["dropped"]) == (41, 40, 1)
    assert (r["model_answers"], r["tracked_answers"]) == (10, 30)
    assert r["model"]["median"] == pytest.approx(0.2)
    assert r["p95_bound_s"] == pytest.approx(0.45) and r["p95_within_bound"]
    only_tracked = stream_summary(4.0, 30.0, [0], answers([0.0]), [])
    assert "p95_bound_s" not in only_tracked                 # no model answer: no bound


def test_memory_growth_is_last_less_first_after_the_warm_up_not_the_swing():
    # Samples swing by 400 MB with the frames in flight; from 2,302 to 2,328 MB after warm-up.
    memory = [(0.0, 800.0), (5.0, 2000.0), (10.0, 2302.0), (11.0, 2700.0), (12.0, 2300.0),
              (13.0, 2690.0), (14.0, 2328.0)]
    r = stream_summary(30.0, 30.0, [], [], memory)
    assert r["rss_growth_mb"] == pytest.approx(26.0)
    assert r["rss_spread_mb"] == pytest.approx(400.0)
    assert r["rss_peak_mb"] == 2700.0
