"""Tests of what the default recipe adds.

A 4:3 input, the skip decoder, several expressions per image, AdamW with warm-up and cosine, time
budgets, the training precision, the calibrated threshold.
"""

import json

import numpy as np
import pytest
import torch
import yaml

from refseg_model.calibrate import best_threshold, threshold_sweep, write_threshold
from refseg_model.checkpoint import CheckpointError, load_checkpoint
from refseg_model.cli.train import main as train_cli
from refseg_model.config import ConfigError, ModelConfig, TrainConfig, load_config
from refseg_model.data import open_source
from refseg_model.ddp import GroupedBatchSampler
from refseg_model.inference import Segmenter
from refseg_model.network import build_model
from refseg_model.preprocess import Letterbox, letterbox, letterbox_mask, unletterbox
from refseg_model.train import (
    coarse_targets,
    learning_rate_factor,
    training_precision,
    unique_images,
)

SMALL_SKIP = {
    "model": {"backbone": "convnet", "width": 8, "input_size": 64, "input_height": 48,
              "stride": 8, "feat_dim": 16, "text_dim": 16, "embed_dim": 16, "cls_dim": 16,
              "fusion": "concat_product", "decoder": "skip", "decoder_dim": 8},
    "train": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.01, "schedule": "cosine",
              "warmup_iters": 5, "batch_size": 8, "lowres_iters": 0, "highres_iters": 40,
              "aux_weight": 1.0, "expressions_per_image": 4, "checkpoint_every": 20,
              "precision": "fp32"},
}


@pytest.fixture()
def skip_yaml(tmp_path):
    path = tmp_path / "small_skip.yaml"
    path.write_text(yaml.safe_dump(SMALL_SKIP))
    return path


def _skip_model(vocab_size=20):
    cfg = ModelConfig(**SMALL_SKIP["model"], vocab_size=vocab_size)
    return cfg, build_model(cfg).eval()


# -- a 4:3 input ------------------------------------------------------------------------------
def test_rectangular_canvas_takes_a_4_3_frame_without_padding():
    rgb = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out, meta = letterbox(rgb, 320, 240)
    assert out.shape == (240, 320, 3) and meta.shape == (240, 320)
    assert (meta.pad_top, meta.pad_left, meta.new_h, meta.new_w) == (0, 0, 240, 320)
    assert meta.valid().all()
    back = unletterbox(np.ones((240, 320), np.float32), meta)
    assert back.shape == (480, 640)


def test_rectangular_canvas_pads_a_portrait_frame_and_round_trips_a_mask():
    meta = Letterbox.compute(640, 480, 320, 240)
    assert (meta.new_h, meta.new_w, meta.pad_left, meta.pad_top) == (240, 180, 70, 0)
    mask = np.zeros((640, 480), bool)
    mask[100:300, 50:250] = True
    boxed = letterbox_mask(mask, 320, 240)
    assert boxed.shape == (240, 320) and not boxed[:, :70].any()
    back = unletterbox(boxed.astype(np.float32), meta) >= 0.5
    assert (back & mask).sum() / (back | mask).sum() > 0.95
    with pytest.raises(ValueError, match="240x320"):
        unletterbox(np.zeros((320, 320)), meta)


def test_config_checks_the_new_fields():
    with pytest.raises(ConfigError, match="multiple of stride"):
        ModelConfig(input_size=320, input_height=244, stride=8)
    with pytest.raises(ConfigError, match="decoder skip needs backbone convnet"):
        ModelConfig(backbone="tiny", decoder="skip")
    with pytest.raises(ConfigError, match="unknown decoder"):
        ModelConfig(decoder="unet")
    with pytest.raises(ConfigError, match="divide batch_size"):
        TrainConfig(batch_size=8, expressions_per_image=3)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="lamb")
    assert ModelConfig(input_size=320, input_height=240, stride=8).input_shape == (240, 320)
    assert ModelConfig(input_size=320, stride=8).input_shape == (320, 320)


def test_the_shipped_preset_is_the_4_3_skip_decoder_network():
    run = load_config("tabletop")
    assert run.model.input_shape == (240, 320) and run.model.decoder == "skip"
    assert run.train.optimizer == "adamw" and run.train.schedule == "cosine"


# -- the skip decoder and shared backbone passes ------------------------------------------------
def test_untrained_skip_decoder_is_the_bilinear_upsampling_of_the_response_map():
    torch.manual_seed(0)
    cfg, model = _skip_model()
    images = torch.randn(2, 3, 48, 64) * 50
    tokens = torch.randint(0, 20, (2, 6))
    with torch.no_grad():
        fine, coarse = model(images, tokens, return_coarse=True)
        assert fine.shape == (2, 1, 48, 64) and coarse.shape == (2, 1, 6, 8)
        up = torch.nn.functional.interpolate(coarse, size=(24, 32), mode="bilinear",
                                             align_corners=False)
        expected = torch.nn.functional.interpolate(up, size=(48, 64), mode="bilinear",
                                                   align_corners=False)
        torch.testing.assert_close(fine, expected)
        torch.testing.assert_close(model.response_map(images, tokens), coarse)


def test_image_index_shares_one_backbone_pass_between_expressions():
    torch.manual_seed(1)
    cfg, model = _skip_model()
    torch.nn.init.normal_(model.decoder.out.weight)  # a non-trivial decoder
    images = torch.randn(2, 3, 48, 64) * 50
    tokens = torch.randint(0, 20, (5, 6))
    index = torch.tensor([0, 0, 1, 1, 1])
    with torch.no_grad():
        shared = model(images, tokens, image_index=index, return_coarse=True)
        repeated = model(images[index], tokens, return_coarse=True)
        lowres = model(images, tokens, stage="lowres", image_index=index)
    for a, b in zip(shared, repeated):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(lowres, repeated[1])
    with pytest.raises(ValueError, match="one entry per expression"):
        model(images, tokens, image_index=torch.tensor([0, 1]))


def test_unique_images_and_coarse_targets():
    rows, index = unique_images(["a", "a", "b", "a", "c"])
    assert rows == [0, 2, 4] and index.tolist() == [0, 0, 1, 0, 2]
    labels = torch.zeros(1, 16, 16)
    labels[0, 9, 3] = 1
    coarse = coarse_targets(labels, 8)
    assert coarse.shape == (1, 2, 2) and coarse.tolist() == [[[0, 0], [1, 0]]]


def test_grouped_batches_hold_k_samples_of_each_image_and_resume_exactly():
    groups = [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(10)] + [[30]]
    sampler = GroupedBatchSampler(groups, images_per_batch=2, per_image=2, seed=7)
    it = iter(sampler)
    batches = [next(it) for _ in range(12)]
    owner = {index: g for g, members in enumerate(groups) for index in members}
    for batch in batches:
        assert len(batch) == 4
        assert owner[batch[0]] == owner[batch[1]] and owner[batch[2]] == owner[batch[3]]
        if owner[batch[0]] != 10:
            assert batch[0] != batch[1]  # without replacement when the image has enough
    resumed = iter(GroupedBatchSampler(groups, 2, 2, seed=7, start_step=5))
    assert [next(resumed) for _ in range(7)] == batches[5:]


# -- schedule, precision, time budget ---------------------------------------------------------
def test_warmup_then_cosine_by_steps_or_by_time():
    tcfg = TrainConfig(schedule="cosine", warmup_iters=10, lowres_iters=110)
    assert learning_rate_factor(tcfg, 0, 110) == pytest.approx(0.1)
    assert learning_rate_factor(tcfg, 9, 110) == pytest.approx(1.0)
    assert learning_rate_factor(tcfg, 10, 110) == pytest.approx(1.0)
    assert learning_rate_factor(tcfg, 60, 110) == pytest.approx(0.5)
    assert learning_rate_factor(tcfg, 110, 110) == pytest.approx(0.0)
    assert learning_rate_factor(tcfg, 50, None, fraction=0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="total"):
        learning_rate_factor(tcfg, 50)
    step = TrainConfig(lr_decay_step=100, lr_decay_rate=0.1)
    assert learning_rate_factor(step, 250) == pytest.approx(0.01)


def test_training_precision_auto_and_forced():
    cpu = torch.device("cpu")
    assert training_precision("fp32", cpu) == "fp32"
    assert training_precision("bf16", cpu) == "bf16"
    assert training_precision("auto", cpu) in ("fp32", "bf16")
    with pytest.raises(ValueError, match="CUDA"):
        training_precision("fp16", cpu)


def test_bf16_training_follows_the_fp32_loss_curve(shapes_root, skip_yaml, tmp_path):
    curves = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert train_cli(["--dataset", "referit", "--data-root", str(shapes_root), "--out",
                          str(out), "--config", str(skip_yaml), "--stage", "highres",
                          "--highres-iters", "25", "--checkpoint-every", "0", "--device",
                          "cpu", "--threads", "1", "--precision", precision]) == 0
        lines = (out / "metrics.jsonl").read_text().splitlines()
        curves[precision] = np.array([json.loads(x)["loss"] for x in lines if '"loss"' in x])
    fp32, bf16 = curves["fp32"], curves["bf16"]
    assert len(fp32) == len(bf16) == 25
    assert fp32[-5:].mean() < 0.7 * fp32[:5].mean()  # it learns
    # same data order, same start: bf16 rounding only (mean relative gap of the loss curves)
    assert np.mean(np.abs(bf16 - fp32) / fp32) < 0.1


def test_time_budget_ends_the_stage_and_keeps_a_checkpoint(shapes_root, skip_yaml, tmp_path):
    out = tmp_path / "budget"
    assert train_cli(["--dataset", "referit", "--data-root", str(shapes_root), "--out",
                      str(out), "--config", str(skip_yaml), "--stage", "highres",
                      "--highres-iters", "100000", "--time-budget", "3", "--device", "cpu",
                      "--threads", "1"]) == 0
    state = load_checkpoint(out / "last.pt")["train_state"]
    assert 0 < state["step"] < 100000 and state["elapsed_s"] >= 3


# -- the calibrated threshold -----------------------------------------------------------------
def test_calibrated_threshold_is_chosen_stored_and_used(shapes_root, skip_yaml, tmp_path):
    out = tmp_path / "run"
    assert train_cli(["--dataset", "referit", "--data-root", str(shapes_root), "--out",
                      str(out), "--config", str(skip_yaml), "--stage", "highres",
                      "--device", "cpu", "--threads", "1"]) == 0
    ckpt = out / "last.pt"
    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
    assert segmenter.threshold == 0.5  # nothing stored yet
    source = open_source("referit", shapes_root, "val")
    sweep = threshold_sweep(segmenter, source, grid=(0.3, 0.5, 0.7), limit=16)
    assert sorted(sweep) == [0.3, 0.5, 0.7] and all(m["num_samples"] == 16
                                                    for m in sweep.values())
    best = best_threshold(sweep)
    assert sweep[best]["prec@0.5"] == max(m["prec@0.5"] for m in sweep.values())
    write_threshold(ckpt, 0.35, sweep)
    assert Segmenter.from_checkpoint(ckpt, device="cpu").threshold == pytest.approx(0.35)
    assert Segmenter.from_checkpoint(ckpt, device="cpu", threshold=0.6).threshold == 0.6
    payload = load_checkpoint(ckpt)
    assert payload["threshold_sweep"]["0.50"]["num_samples"] == 16
    write_threshold(ckpt, 1.5)
    with pytest.raises(CheckpointError, match="threshold"):
        Segmenter.from_checkpoint(ckpt, device="cpu")
