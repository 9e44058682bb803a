"""Tests of the Segmenter: preprocessing, output sizes and types, input checks, CLI."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import refseg_model
from refseg_model.checkpoint import CheckpointError, make_payload, save_checkpoint
from refseg_model.network import build_model

VOCAB = ["<pad>", "<go>", "<eos>", "<unk>", "the", "red", "square", "blue", "circle"]


@pytest.fixture()
def checkpoint(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config, len(VOCAB))
    return save_checkpoint(make_payload(model, tiny_config, VOCAB, "highres"),
                           tmp_path / "m.pt")


def test_predict_outputs_at_original_size(checkpoint):
    from refseg_model import Prediction, Segmenter

    seg = Segmenter.from_checkpoint(checkpoint, device="cpu")
    rgb = np.random.default_rng(0).integers(0, 255, (37, 81, 3), dtype=np.uint8)
    pred = seg.predict(rgb, "the red square")
    assert isinstance(pred, Prediction)
    assert pred.mask.shape == pred.probs.shape == (37, 81) and pred.mask.dtype == bool
    assert pred.probs.dtype == np.float32 and 0 <= pred.probs.min() <= pred.probs.max() <= 1
    assert np.array_equal(pred.mask, pred.probs >= 0.5)
    expected = float(pred.probs[pred.mask].mean()) if pred.mask.any() else 0.0
    assert pred.score == pytest.approx(expected)
    all_on = seg.predict(rgb, "the red square", threshold=0.0)
    assert all_on.mask.all() and all_on.score == pytest.approx(float(all_on.probs.mean()))
    assert seg.predict(rgb, "the red square", threshold=1.0).score in (0.0, 1.0)


def test_the_compile_probe_runs_on_the_shape_predict_feeds(tiny_config):
    # A 4:3 network input (input_height < input_width): the probe's example was square before.
    from refseg_model import Segmenter
    from refseg_model.text import Vocabulary

    tiny_config.input_height = tiny_config.input_width * 3 // 4
    seg = Segmenter(build_model(tiny_config, len(VOCAB)), Vocabulary.from_list(VOCAB),
                    tiny_config, device="cpu", compile="off")
    fed, _ = seg._image(np.zeros((30, 40, 3), np.uint8))
    assert fed.shape[:2] == (tiny_config.input_height, tiny_config.input_width)
    assert seg._compiled_shape == fed.shape[:2]   # the shape the probe measured and compiled


def test_predict_matches_manual_preprocessing(checkpoint):
    from refseg_model import Segmenter
    from refseg_model.preprocess import letterbox, normalize, unletterbox

    # float32: the manual forward below feeds float32 images (the bf16 path: test_fastpath)
    seg = Segmenter.from_checkpoint(checkpoint, device="cpu", precision="fp32")
    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    boxed, meta = letterbox(rgb, 64)
    tokens = torch.tensor([seg.vocabulary.encode("blue circle", 20)])
    with torch.inference_mode():
        logits = seg.model(torch.from_numpy(normalize(boxed))[None], tokens)
    manual = unletterbox(torch.sigmoid(logits)[0, 0].numpy(), meta)
    np.testing.assert_allclose(seg.predict(rgb, "blue circle").probs, manual, atol=1e-5)


def test_stage_override_scores_the_coarse_map(checkpoint):
    from refseg_model import Segmenter
    from refseg_model.preprocess import letterbox, normalize, unletterbox

    seg = Segmenter.from_checkpoint(checkpoint, device="cpu", stage="lowres", precision="fp32")
    assert seg.stage == "lowres"
    assert Segmenter.from_checkpoint(checkpoint, device="cpu").stage == "highres"
    rgb = np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    boxed, meta = letterbox(rgb, 64)
    tokens = torch.tensor([seg.vocabulary.encode("red square", 20)])
    with torch.inference_mode():
        logits = seg.model.predict_logits(torch.from_numpy(normalize(boxed))[None], tokens,
                                          stage="lowres")
    manual = unletterbox(torch.sigmoid(logits)[0, 0].numpy(), meta)
    np.testing.assert_allclose(seg.predict(rgb, "red square").probs, manual, atol=1e-5)
    with pytest.raises(ValueError, match="stage"):
        Segmenter.from_checkpoint(checkpoint, device="cpu", stage="det")


def test_predict_batch_equals_single(checkpoint):
    from refseg_model import Segmenter

    seg = Segmenter.from_checkpoint(checkpoint, device="cpu")
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, (30, 40, 3), dtype=np.uint8) for _ in range(2)]
    batch = seg.predict_batch(images, ["red square", "blue circle"])
    single = seg.predict(images[1], "blue circle")
    np.testing.assert_allclose(batch[1].probs, single.probs, atol=1e-5)


def test_unknown_words_are_the_vocabularys_without_punctuation(checkpoint):
    from refseg_model import Segmenter

    seg = Segmenter.from_checkpoint(checkpoint, device="cpu")
    assert seg.unknown_words("the red square") == ()
    assert seg.unknown_words("the Green, square; zorb!") == ("green", "zorb")
    assert seg.vocabulary.unknown_words("the red, square") == [","]  # punctuation is a token


def test_input_errors(checkpoint):
    from refseg_model import Segmenter

    seg = Segmenter.from_checkpoint(checkpoint, device="cpu")
    good = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        seg.predict(good.astype(np.float32), "red")
    with pytest.raises(ValueError, match="HxWx3"):
        seg.predict(np.zeros((8, 8), np.uint8), "red")
    with pytest.raises(ValueError, match="empty"):
        seg.predict(good, "   ")
    with pytest.raises(ValueError, match="threshold"):
        seg.predict(good, "red", threshold=1.5)
    with pytest.raises(ValueError, match="device"):
        Segmenter.from_checkpoint(checkpoint, device="tpu")
    seg.release()
    with pytest.raises(RuntimeError, match="released"):
        seg.predict(good, "red")


def test_missing_checkpoint_and_default_path(tmp_path):
    from refseg_model import Segmenter

    with pytest.raises(CheckpointError, match="not found"):
        Segmenter.from_checkpoint(tmp_path / "none.pt")
    path = refseg_model.default_checkpoint_path()
    assert path.name == "tabletop.pt" and path.parent.name == "weights"


def test_import_is_light():
    code = "import sys, refseg_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_predict_cli_writes_mask_and_overlay(checkpoint, tmp_path):
    from refseg_model.cli.predict import main

    image = np.random.default_rng(3).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    rc = main(["--checkpoint", str(checkpoint), "--image", str(tmp_path / "in.png"),
               "--expression", "the red square", "--out", str(tmp_path / "mask.png"),
               "--overlay", str(tmp_path / "overlay.png"), "--device", "cpu",
               "--threshold", "0"])
    assert rc == 0
    mask = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (30, 50) and mask.dtype == np.uint8 and (mask == 255).all()
    assert cv2.imread(str(tmp_path / "overlay.png")).shape == (30, 50, 3)
    assert main(["--checkpoint", str(tmp_path / "no.pt"), "--image", str(tmp_path / "in.png"),
                 "--expression", "x", "--out", str(tmp_path / "m2.png")]) == 2


# -- binarisation ----------------------------------------------------------------------------
def test_released_binarisation_thresholds_then_resizes():
    from refseg_model.inference import released_mask
    from refseg_model.preprocess import Letterbox, unletterbox

    meta = Letterbox.compute(96, 128, 64)  # content 48x64 on the 64x64 input, 2x up to 96x128
    prob = np.zeros((64, 64), np.float32)
    prob[meta.pad_top + 10, 20] = 1.0
    released = released_mask(prob, meta)
    ys, xs = np.nonzero(released)
    # 0/1 map resized bilinearly (half-pixel centres), every value > 0 kept: a 4x4 block
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (19, 22, 39, 42)
    resized_first = unletterbox(prob, meta) >= 0.5  # probabilities resized, then >= 0.5
    assert resized_first.sum() == 4 and released.sum() == 16


def test_segmenter_uses_the_checkpoint_binarisation():
    import dataclasses

    from refseg_model.config import load_config
    from refseg_model.inference import Segmenter, released_mask
    from refseg_model.preprocess import letterbox, normalize
    from refseg_model.text import Vocabulary

    cfg = dataclasses.replace(load_config("tiny").model, binarize="threshold_then_resize")
    vocab = Vocabulary.from_list(["<pad>", "<go>", "<eos>", "<unk>", "a", "b", "c", "d"])
    model = build_model(cfg, len(vocab))
    segmenter = Segmenter(model, vocab, model.config, stage="lowres", device="cpu",
                          precision="fp32")
    rgb = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    pred = segmenter.predict(rgb, "a b")
    boxed, meta = letterbox(rgb, cfg.input_width, cfg.input_height)
    square = segmenter.model.predict_logits(
        torch.from_numpy(normalize(boxed))[None], torch.tensor([vocab.encode("a b")]),
        stage="lowres")
    expected = released_mask(torch.sigmoid(square[0, 0]).detach().numpy(), meta)
    assert np.array_equal(pred.mask, expected)


def test_exposure_range_compensates_before_the_network(tiny_config):
    """With ``exposure_range`` a dark frame is predicted as its compensated copy is without."""
    import dataclasses

    from refseg_model import Segmenter
    from refseg_model.preprocess import compensate_exposure, mean_luma
    from refseg_model.text import Vocabulary

    torch.manual_seed(0)
    model = build_model(tiny_config, len(VOCAB))
    vocabulary = Vocabulary.from_list(VOCAB)
    luma_range = [93.0, 150.0]
    plain = Segmenter(model, vocabulary, model.config, device="cpu", precision="fp32",
                      compile="off")
    fixed = Segmenter(model, vocabulary,
                      dataclasses.replace(model.config, exposure_range=luma_range),
                      device="cpu", precision="fp32", compile="off")
    rng = np.random.default_rng(2)
    normal = rng.integers(60, 190, (64, 64, 3), dtype=np.uint8)
    dark = (normal * 0.45).astype(np.uint8)
    assert mean_luma(dark) < 93
    compensated = compensate_exposure(dark, luma_range)
    np.testing.assert_allclose(fixed.predict(dark, "the red square").probs,
                               plain.predict(compensated, "the red square").probs, atol=1e-5)
    assert not np.allclose(plain.predict(dark, "the red square").probs,
                           fixed.predict(dark, "the red square").probs, atol=1e-4)
    np.testing.assert_array_equal(fixed.predict(normal, "blue circle").probs,   # in range
                                  plain.predict(normal, "blue circle").probs)


@pytest.mark.parametrize("bad", [[150, 93], [0, 100], [10, 300], [1, 2, 3], ["a", 9]])
def test_exposure_range_is_checked(tiny_config, bad):
    import dataclasses

    from refseg_model.config import ConfigError

    with pytest.raises(ConfigError, match="exposure_range"):
        dataclasses.replace(tiny_config, exposure_range=bad)
