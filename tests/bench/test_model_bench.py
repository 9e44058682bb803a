"""``make bench``'s model section: FLOP counts and the default's predict on the shipped weights."""

import numpy as np
import pytest
import torch

from bench.model_bench import count_flops, time_parts, topmost
from bench.models import load_network, segmenter_of
from refseg_model.fastpath import resolve_path
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
    # the backbone's layers run one by one (the skip decoder reads them), never body itself
    assert flops["parts"]["backbone.body"] > 0.3 * flops["total"]
    # what no part holds is the folded first classifier layer and glue: a few percent
    assert 0.9 * flops["total"] < sum(flops["parts"].values()) <= flops["total"]


def test_topmost_picks_the_modules_that_ran_highest_in_a_part():
    ran = {"backbone.body.0", "backbone.body.3", "backbone.head", "decoder", "decoder.out",
           "classifier.mlp2"}
    assert topmost(ran, "backbone.body") == ["backbone.body.0", "backbone.body.3"]
    assert topmost(ran, "decoder") == ["decoder"]
    assert topmost(ran, "classifier") == ["classifier.mlp2"]
    assert topmost(ran, "backbone.head") == ["backbone.head"]
    assert topmost(ran, "context") == []


def test_the_time_of_each_part_is_measured(default_network):
    device = torch.device("cpu")
    got = time_parts(default_network, device, resolve_path("fp32", device=device))
    parts = got["parts_s"]
    assert parts["backbone.body"] > 0 and parts["decoder"] > 0 and parts["context"] > 0
    assert sum(parts.values()) == pytest.approx(got["total_s"], rel=1e-6)


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
