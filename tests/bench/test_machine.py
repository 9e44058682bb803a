"""The dense-kernel peak of ``make bench``: real kernels timed on this CPU."""

import torch

from bench.machine import conv_peak, dense_peak, matmul_peak

CPU = torch.device("cpu")


def test_dense_peak_is_the_better_of_matmul_and_convolution():
    # how fast the kernels run is what `make bench` measures and reports; here: which is kept
    peak = dense_peak(CPU, torch.float32, seconds=0.0, size=128)
    assert set(peak["rates"]) == {"matmul", "conv3x3"}
    assert peak["kernel"] in peak["rates"]
    assert peak["flop_per_s"] == max(peak["rates"].values())
    assert peak["flop_per_s"] == peak["rates"][peak["kernel"]]
    assert all(rate > 0 for rate in peak["rates"].values())


def test_each_probe_counts_its_flops_over_at_least_two_runs():
    mm = matmul_peak(CPU, torch.float32, seconds=0.0, size=128)
    conv = conv_peak(CPU, torch.float32, seconds=0.0, channels=16, side=16)
    assert mm["runs"] >= 2 and conv["runs"] >= 2
    assert mm["size"] == 128 and conv["kernel"] == "conv3x3"
    assert mm["flop_per_s"] > 0 and conv["flop_per_s"] > 0
