"""Tests of the fast numeric path: bf16 autocast + channels_last keep the masks of float32."""

import numpy as np
import pytest
import torch

from refseg_model.checkpoint import load_checkpoint
from refseg_model.cli.train import main as train_cli
from refseg_model.data import open_source
from refseg_model.fastpath import NumericPath, prepare_model, resolve_path
from refseg_model.inference import Segmenter
from refseg_model.network import build_model


@pytest.fixture(scope="module")
def trained(shapes_root, tmp_path_factory):
    """Return a tiny network trained for a few seconds on the shapes split (decisive logits)."""
    out = tmp_path_factory.mktemp("fastpath_run")
    rc = train_cli(["--dataset", "referit", "--data-root", str(shapes_root), "--out", str(out),
                    "--config", "tiny", "--device", "cpu", "--threads", "1", "--stage", "lowres",
                    "--max-iters", "60", "--lr", "0.1", "--checkpoint-every", "60"])
    assert rc == 0
    return out / "last.pt"


def test_bf16_channels_last_masks_agree_with_fp32(trained, shapes_root):
    reference = Segmenter.from_checkpoint(trained, device="cpu")
    fast = Segmenter.from_checkpoint(trained, device="cpu", precision="bf16", channels_last=True)
    assert fast.numeric_path == NumericPath("bf16", True)
    source = open_source("referit", shapes_root, "val")
    inter = union = 0
    foreground = []
    for sample in source.samples:
        image, _ = source.load_checked(sample)
        a = reference.predict(image, sample.expression)
        b = fast.predict(image, sample.expression)
        assert b.mask.shape == a.mask.shape and b.probs.dtype == np.float32
        inter += int(np.logical_and(a.mask, b.mask).sum())
        union += int(np.logical_or(a.mask, b.mask).sum())
        foreground.append(a.mask.mean())
        assert np.abs(a.probs - b.probs).max() < 0.1
    assert len(source.samples) == 64
    assert 0.02 < np.mean(foreground) < 0.9  # the masks say something: neither empty nor full
    assert inter / union >= 0.99


def test_channels_last_fp32_is_the_same_computation(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config).eval()
    images = torch.randn(2, 3, 64, 64) * 60
    tokens = torch.randint(1, 20, (2, 20))
    with torch.inference_mode():
        expected = model(images, tokens)
        keys = set(model.state_dict())
        prepare_model(model, NumericPath("fp32", True))
        got = model(images.contiguous(memory_format=torch.channels_last), tokens)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert set(model.state_dict()) == keys  # checkpoints of a prepared model are unchanged


def test_lstm_stays_float32_under_bf16_autocast(tiny_config):
    model = prepare_model(build_model(tiny_config).eval(), NumericPath("bf16", True))
    tokens = torch.randint(1, 20, (3, 20))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        text = model.expression_encoder(tokens)
    assert text.dtype == torch.float32
    torch.testing.assert_close(text.norm(dim=1), torch.ones(3))


def test_precision_checks(trained):
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_path("int4")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Segmenter.from_checkpoint(trained, device="cpu", precision="fp16")
    seg = Segmenter.from_checkpoint(trained, device="cpu")
    assert seg.numeric_path == NumericPath("fp32", False) and "fp32" in repr(seg)
    assert load_checkpoint(trained)["stage"] == "lowres"
