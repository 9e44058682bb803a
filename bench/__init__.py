"""``make bench``: latency, throughput and robustness figures of refseg (see run_bench.py)."""
