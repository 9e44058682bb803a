"""Tests of the fast numeric path: reduced precision + channels_last keep the masks of float32."""

import copy

import numpy as np
import pytest
import torch

from refseg_model.checkpoint import load_checkpoint
from refseg_model.cli.train import main as train_cli
from refseg_model.data import open_source
from refseg_model.fastpath import (
    NumericPath,
    auto_precision,
    bf16_matmul_speedup,
    choose_precision,
    compile_if_faster,
    configure_threads,
    cpu_bf16_kind,
    prepare_model,
    resolve_path,
)
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
    reference = Segmenter.from_checkpoint(trained, device="cpu", precision="fp32",
                                          channels_last=False)
    fast = Segmenter.from_checkpoint(trained, device="cpu", precision="bf16")
    assert fast.numeric_path == NumericPath("bf16", True)  # channels_last by default
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
    with pytest.raises(ValueError, match="unknown compile mode"):
        Segmenter.from_checkpoint(trained, device="cpu", compile="maybe")
    seg = Segmenter.from_checkpoint(trained, device="cpu", precision="fp32", channels_last=False)
    assert seg.numeric_path == NumericPath("fp32", False) and "fp32" in repr(seg)
    assert load_checkpoint(trained)["stage"] == "lowres"


def _no_probe() -> float:
    raise AssertionError("the bf16 probe ran where the policy does not need it")


@pytest.mark.parametrize("hardware, training, expected", [
    # (device, CPU bf16 kind, probe speedup, GPU has bf16), training?, precision
    (("cuda", None, None, True), False, "fp16"),    # inference: tensor cores, fp16's mantissa
    (("cuda", None, None, True), True, "bf16"),     # training: bf16's range, no loss scaler
    (("cuda", None, None, False), True, "fp16"),    # training on a GPU without bf16
    (("cpu", "amx", None, None), False, "bf16"),
    (("cpu", "amx", None, None), True, "bf16"),
    (("cpu", "avx512_bf16", 2.0, None), False, "bf16"),  # the probe finds bf16 faster
    (("cpu", "avx512_bf16", 1.2, None), False, "fp32"),  # below BF16_MIN_SPEEDUP
    (("cpu", "avx512_bf16", None, None), True, "fp32"),  # bf16 backward is slower there
    (("cpu", None, None, None), False, "fp32"),
    (("cpu", None, None, None), True, "fp32"),
])
def test_auto_precision_policy(hardware, training, expected):
    device, kind, speedup, cuda_bf16 = hardware
    precision, reason = auto_precision(
        device, training=training, cpu_bf16=kind,
        bf16_speedup=_no_probe if speedup is None else (lambda: speedup),
        cuda_bf16=bool(cuda_bf16), device_name="GPU-X")
    assert precision == expected
    assert reason.startswith(expected)
    if speedup is not None:
        assert f"{speedup:.2f}x" in reason  # the measured figure is logged


def test_auto_precision_here_is_the_policy_applied_to_this_machine():
    kind = cpu_bf16_kind()
    for training in (False, True):
        expected = auto_precision("cpu", training=training, cpu_bf16=kind,
                                  bf16_speedup=bf16_matmul_speedup)
        assert choose_precision("cpu", training=training) == expected
        path = resolve_path("auto", None, "cpu", training=training)
        assert path == NumericPath(expected[0], True) and path.reason == expected[1]
    assert resolve_path("bf16", False).reason == "bf16: asked for"
    assert resolve_path("fp32", True, "cpu", training=True) == NumericPath("fp32", True)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_path("fp16", None, "cpu", training=True)


def test_reduced_precision_weights_are_converted_once(tiny_config):
    """Conv weights become bf16 at load (same numerics as autocast over float32 weights)."""
    torch.manual_seed(0)
    model = build_model(tiny_config).eval()
    reference = build_model(tiny_config).eval()
    reference.load_state_dict(model.state_dict())
    keys = set(model.state_dict())
    prepare_model(model, NumericPath("bf16", True))
    assert set(model.state_dict()) == keys
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    assert model.upsample.deconv.weight.dtype == torch.bfloat16
    encoder = model.expression_encoder
    assert all(p.dtype == torch.float32 for p in encoder.parameters())  # LSTM + embedding
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)
    reference.to(memory_format=torch.channels_last)
    images = (torch.rand(2, 3, 64, 64) * 255 - 120).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        converted = model.backbone(images).float()
        cast_each_time = reference.backbone(images).float()  # autocast casts the fp32 weights
    torch.testing.assert_close(converted, cast_each_time, atol=1e-2, rtol=1e-2)


def _synthetic_frames(root, count):
    from refseg_model.synth.writer import write_dataset

    write_dataset(root, max(4, count), seed=11, width=320, height=240, test_frac=0.5,
                  progress=False)
    source = open_source("synthetic", root, "test")
    frames = []
    for sample in source.samples[:count]:
        loaded = source.load(sample)
        if loaded is not None:
            frames.append((loaded[0], sample.expression))
    assert frames
    return frames


def _log_odds(probs):
    probs = np.clip(probs.astype(np.float64), 1e-12, 1 - 1e-12)
    return np.log(probs / (1 - probs))


def _agreement(reference: Segmenter, fast: Segmenter, frames, median_threshold: bool):
    """Return the overall IoU, the mean foreground fraction and the logits' relative error.

    The relative error is that of ``fast``'s log-odds against fp32's, each frame's centred on
    its median: the size of the numeric difference against the spread of the map.
    """
    inter = union = 0
    foreground, error, spread = [], 0.0, 0.0
    for rgb, expression in frames:
        ref = reference.predict(rgb, expression)
        threshold = float(np.median(ref.probs)) if median_threshold else None
        if threshold is not None:
            ref = reference.predict(rgb, expression, threshold=threshold)
        got = fast.predict(rgb, expression, threshold=threshold)
        inter += int(np.logical_and(ref.mask, got.mask).sum())
        union += int(np.logical_or(ref.mask, got.mask).sum())
        foreground.append(ref.mask.mean())
        ref_logits, got_logits = _log_odds(ref.probs), _log_odds(got.probs)
        error += float(np.sum((got_logits - ref_logits) ** 2))
        spread += float(np.sum((ref_logits - np.median(ref_logits)) ** 2))
    return inter / union, float(np.mean(foreground)), (error / spread) ** 0.5


def _fast_precisions():
    """Return the reduced precisions to check here: bf16, and the auto choice if another."""
    auto = resolve_path("auto", None, "cpu").precision
    return ["bf16"] + ([auto] if auto not in ("bf16", "fp32") else [])


@pytest.mark.parametrize("preset", ["tabletop", "paper"])
def test_fast_path_masks_agree_with_fp32_on_a_synthetic_split(preset, tmp_path):
    """Masks and logits of the fast path against fp32 on rendered tabletop scenes.

    ``tabletop``: the shipped checkpoint (trained weights, the default model). ``paper``:
    VGG-16 at random initialisation, input 128x128 to keep the test fast (the same layers at
    1/16 of the FLOPs); its random logits say nothing, so each frame is thresholded at the
    median fp32 probability (half the pixels in the mask: a strict comparison).
    """
    import refseg_model
    from bench.models import WORDS
    from refseg_model.config import load_config
    from refseg_model.text import Vocabulary

    frames = _synthetic_frames(tmp_path / "synthetic", 6 if preset == "tabletop" else 2)
    if preset == "tabletop":
        path = refseg_model.default_checkpoint_path()

        def make(precision, channels_last):
            return Segmenter.from_checkpoint(path, device="cpu", precision=precision,
                                             channels_last=channels_last, compile="off")
    else:
        torch.manual_seed(0)
        cfg = load_config("paper").model
        cfg.pretrained, cfg.backbone_weights = False, None
        cfg.input_width = cfg.input_height = 128
        # the numeric path is under test, not the released binarisation (threshold at the
        # input size, then every resized pixel > 0: it widens each boundary difference)
        cfg.binarize = "resize_then_threshold"
        cfg.lstm_forget_bias, cfg.learned_pad = 0.0, False  # the random text vector of the check
        vocabulary = Vocabulary.from_list(WORDS)
        base = build_model(cfg, len(vocabulary))  # VGG-16's initialisation takes seconds: once

        def make(precision, channels_last):
            return Segmenter(copy.deepcopy(base), vocabulary, base.config, device="cpu",
                             precision=precision, channels_last=channels_last, compile="off")
    reference = make("fp32", False)
    # the random map's median threshold puts half the pixels on a knife edge: measured on
    # AVX2 (oneDNN's bf16 without native bf16 units) IoU 0.987-0.992 at a 1.2-2.0% logit error
    min_iou = 0.99 if preset == "tabletop" else 0.98
    for precision in _fast_precisions():
        fast = make(precision, None)
        assert fast.numeric_path.precision == precision and fast.numeric_path.channels_last
        iou, foreground, error = _agreement(reference, fast, frames,
                                            median_threshold=preset == "paper")
        assert 0.005 < foreground < 0.95, foreground  # the masks say something
        print(f"{preset} {precision}: IoU {iou:.4f}, foreground {foreground:.3f}, "
              f"logit error {error:.4f}")
        name = fast.numeric_path.name
        # bf16 keeps 8 mantissa bits: ~0.4% per rounding, 1-2% after VGG-16's 16 layers
        assert error <= 0.05, f"{preset} {name}: relative logit error {error:.4f}"
        assert iou >= min_iou, f"{preset} {name}: overall IoU {iou:.4f}"


def test_compile_off_and_auto_keep_small_networks_eager(tiny_config):
    model = build_model(tiny_config).eval()
    path = NumericPath("fp32", True, reason="fp32: asked for")
    images = torch.zeros(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    tokens = torch.ones(1, 20, dtype=torch.long)
    assert compile_if_faster(model, path, images, tokens, "highres", "off") == (None, path)
    runner, auto = compile_if_faster(model, path, images, tokens, "highres", "auto")
    assert runner is None and not auto.compiled and "no compile below" in auto.reason


def test_configure_threads_reports_what_it_set():
    import os

    done = configure_threads()
    assert done["torch_threads"] == torch.get_num_threads() == len(os.sched_getaffinity(0))
    assert done["interop_threads"] >= 1
    configure_threads(threads=1)
    assert torch.get_num_threads() == 1
    configure_threads(threads=done["torch_threads"])


def _with_running_statistics(model):
    """Give every batch norm running statistics and an affine part that are not the identity."""
    gen = torch.Generator().manual_seed(3)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen))
            module.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
            module.weight.data.copy_(torch.randn(n, generator=gen))
            module.bias.data.copy_(torch.randn(n, generator=gen))
    return model


@pytest.mark.parametrize("preset", ["tiny", "tabletop"])
def test_fold_batchnorm_keeps_the_function(preset):
    import dataclasses

    from refseg_model.config import load_config
    from refseg_model.fastpath import fold_batchnorm

    words = ["<pad>", "<go>", "<eos>", "<unk>", "next", "to"] + [f"w{i}" for i in range(14)]
    cfg = dataclasses.replace(load_config(preset).model, vocab_size=20, input_width=96,
                              input_height=64)
    torch.manual_seed(0)
    model = _with_running_statistics(build_model(cfg, vocabulary=words)).eval()
    for module in model.modules():  # layers that start at zero (decoder, context): make them count
        if isinstance(module, torch.nn.Conv2d) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.1)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert norms >= 3
    images = torch.randn(2, 3, 64, 96) * 60
    tokens = torch.randint(6, 20, (2, 20))
    tokens[1, 10] = words.index("to")  # a relation: the landmark's pass runs too
    with torch.inference_mode():
        expected = model(images, tokens)
    assert fold_batchnorm(model) == norms  # every norm of these networks follows a convolution
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model) == 0  # folding again finds nothing
    with torch.inference_mode():
        got = model(images, tokens)
    assert expected.abs().max() > 0.1  # a function that says something, not zeros
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_fold_batchnorm_refuses_a_training_model(tiny_config):
    from refseg_model.fastpath import fold_batchnorm

    model = build_model(tiny_config)
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_expression_encoder_remembers_commands_only_without_gradients(tiny_config):
    from refseg_model.network import MEMO_SIZE

    encoder = build_model(tiny_config).eval().expression_encoder
    tokens = torch.randint(1, 20, (1, 20))
    other = tokens.clone()
    other[0, -1] = (tokens[0, -1] % 19) + 1  # another last word
    with torch.no_grad():
        fresh = encoder(tokens)
    encoder.remember()
    with torch.inference_mode():
        first = encoder(tokens)
        again = encoder(tokens)
        third = encoder(other)
    assert again is first  # the second frame of the same command is not encoded again
    torch.testing.assert_close(first, fresh)
    assert not torch.allclose(third, first)  # another command is encoded, not looked up
    assert len(encoder.memo) == 2
    with torch.enable_grad():
        trained = encoder(tokens)
    assert trained is not first and trained.requires_grad  # training never reads the memo
    with torch.no_grad():
        for word in range(MEMO_SIZE + 3):
            encoder(torch.full((1, 20), word % 20).index_fill_(1, torch.tensor([0]), word // 20))
    assert len(encoder.memo) <= MEMO_SIZE  # bounded
    encoder.forget()
    assert encoder.memo is None
    with torch.no_grad():
        assert encoder(tokens) is not first


def test_segmenter_folds_norms_and_remembers_the_command(tiny_config):
    from refseg_model.text import Vocabulary

    words = ["<pad>", "<go>", "<eos>", "<unk>"] + [f"w{i}" for i in range(16)]
    torch.manual_seed(0)
    model = _with_running_statistics(build_model(tiny_config)).eval()
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    kw = dict(device="cpu", precision="fp32", channels_last=False, compile="off")
    fresh = Segmenter(copy.deepcopy(model), Vocabulary.from_list(words), tiny_config, **kw)
    fresh.model.expression_encoder.forget()  # encodes every call afresh
    segmenter = Segmenter(model, Vocabulary.from_list(words), tiny_config, **kw)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in segmenter.model.modules())
    first = segmenter.predict(image, "w1 w2 w3")
    second = segmenter.predict(image, "w1 w2 w3")
    assert len(segmenter.model.expression_encoder.memo) == 1
    np.testing.assert_array_equal(first.probs, second.probs)
    np.testing.assert_array_equal(second.probs, fresh.predict(image, "w1 w2 w3").probs)
    assert fresh.model.expression_encoder.memo is None
    encoder = segmenter.model.expression_encoder
    segmenter.release()
    assert encoder.memo is None
