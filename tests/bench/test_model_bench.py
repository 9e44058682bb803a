"""``make bench``'s model section: FLOP counts and the default's predict on the shipped weights."""

import numpy as np
import pytest
import torch

from bench.model_bench import count_flops
from bench.models import load_network, segmenter_of
from refseg_model.inference import Segmenter


@pytest.fixture(scope="module")
def default_network():
    return load_network("default")


def test_flops_of_the_shipped_default_are_counted(default_network):
    """The landmark default runs through the FLOP counter (its row pick is ``nonzero``)."""
    flops = count_flops(default_network)
    width, height = (int(x) for x in flops["input"].split("x"))
    assert (height, width) == default_network.config.input_shape
    # 384x288: about 3 GFLOP (the folded classifier layer; docs/PERFORMANCE.md)
    assert 1e9 < flops["total"] < 6e9
    assert flops["parts"]["decoder"] > 0


def test_a_network_that_a_segmenter_hooked_can_be_copied_for_the_bench():
    """The bench deep-copies networks that a Segmenter may already carry a hook on."""
    net = load_network("default")
    owner = Segmenter(net.model, net.vocabulary, net.config, device="cpu", precision="fp32",
                      compile="off")                       # hooks net.model in place
    copied = segmenter_of(net, torch.device("cpu"))          # deep-copies the hooked network
    rgb = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    a = owner.predict(rgb, "the cup next to the red bowl")
    b = copied.predict(rgb, "the cup next to the red bowl")
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
    assert a.landmark_peak is not None and a.landmark_peak == pytest.approx(b.landmark_peak)
