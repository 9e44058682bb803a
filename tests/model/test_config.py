"""Tests of ``refseg_model.config``: presets, checks, per-stage overrides, older files."""

import dataclasses

import pytest
import torch
import yaml

from refseg_model import default_checkpoint_path
from refseg_model.checkpoint import load_checkpoint, model_config_of
from refseg_model.config import (
    ConfigError,
    DetConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    load_config,
    preset_names,
    save_config,
)


# -- presets ---------------------------------------------------------------------------------
def test_paper_preset_resolves_to_the_released_recipe():
    run = load_config("paper")
    model, train = run.model, run.train
    assert model.freeze_backbone and model.pretrained
    assert (model.lstm_forget_bias, model.learned_pad) == (1.0, True)
    assert model.binarize == "threshold_then_resize"
    assert model.input_shape == (512, 512)
    assert not train.embedding_weight_decay
    expected = {  # stage: (batch, iterations, lr, decay step, w_fg, w_bg, head fixed)
        "det": (50, 25000, 0.01, 10000, 1.0, 1.0, True),
        "lowres": (10, 30000, 0.01, 10000, 1.0, 1.0, False),
        "highres": (10, 18000, 0.01, 6000, 1.0, 1.0 / 3, False),
    }
    for stage, values in expected.items():
        s = train.for_stage(stage)
        got = (s.batch_size, s.stage_iters(stage), s.lr, s.lr_decay_step, s.w_fg, s.w_bg,
               s.freeze_head)
        assert got == pytest.approx(values), stage
        assert (s.momentum, s.weight_decay, s.lr_decay_rate) == (0.9, 0.0005, 0.1)
        assert s.stages == {}
    det = train.for_stage("det").det
    assert (det.crop_size, det.pos_iou, det.neg_iou, det.neg_ratio) == (224, 0.7, 1e-6, 1.0)
    assert det.proposals == "referit_edgeboxes_top100" and det.released_init


def test_tabletop_presets_have_no_stage_overrides_and_the_old_defaults():
    for name in ("tabletop", "tabletop_mobilenet", "tabletop_concat"):
        run = load_config(name)
        assert run.train.stages == {}
        assert run.train.for_stage("lowres") == run.train
        assert run.train.embedding_weight_decay and not run.train.freeze_head
        assert (run.model.lstm_forget_bias, run.model.learned_pad) == (0.0, False)
        assert run.model.binarize == "resize_then_threshold"


def test_the_shipped_preset_is_the_4_3_skip_decoder_network():
    run = load_config("tabletop")
    assert run.model.input_shape == (240, 320) and run.model.decoder == "skip"
    assert (run.model.input_width, run.model.input_height) == (320, 240)
    assert run.train.optimizer == "adamw" and run.train.schedule == "cosine"


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_survives_a_round_trip_through_its_yaml(name, tmp_path):
    run = load_config(name)
    save_config(run, tmp_path / "again.yaml")
    again = load_config(tmp_path / "again.yaml")
    assert again == run
    assert ModelConfig.from_dict(run.model.to_dict()) == run.model
    assert TrainConfig.from_dict(run.train.to_dict()) == run.train


# -- checks ----------------------------------------------------------------------------------
def test_model_config_checks_its_values():
    with pytest.raises(ConfigError, match="multiple of stride"):
        ModelConfig(input_width=320, input_height=244, stride=8)
    with pytest.raises(ConfigError, match="decoder skip needs backbone convnet"):
        ModelConfig(backbone="tiny", decoder="skip")
    with pytest.raises(ConfigError, match="unknown decoder"):
        ModelConfig(decoder="unet")
    with pytest.raises(ConfigError, match="input_width must be a positive integer"):
        ModelConfig(input_width=0)
    with pytest.raises(ConfigError, match="input_height must be >= 0"):
        ModelConfig(input_height=-8)
    with pytest.raises(ConfigError, match="feat_dim == text_dim"):
        ModelConfig(fusion="concat_product", feat_dim=64, text_dim=32)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['depth'\]"):
        ModelConfig.from_dict({"depth": 3})


def test_input_width_and_height_name_the_sides():
    assert ModelConfig(input_width=320, input_height=240, stride=8).input_shape == (240, 320)
    square = ModelConfig(input_width=320, stride=8)  # no height: the paper's square input
    assert square.input_height == 320 and square.input_shape == (320, 320)
    assert square.to_dict()["input_height"] == 320


def test_train_config_checks_its_values():
    with pytest.raises(ConfigError, match="divide batch_size"):
        TrainConfig(batch_size=8, expressions_per_image=3)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="int8")
    with pytest.raises(ConfigError, match="lowres_iters must be >= 0"):
        TrainConfig(lowres_iters=-1)
    with pytest.raises(ConfigError, match="need 0 < neg_iou <= pos_iou <= 1"):
        DetConfig(pos_iou=0.3, neg_iou=0.5)
    with pytest.raises(ConfigError, match="crop_size must be positive"):
        TrainConfig(det=DetConfig(crop_size=0))
    with pytest.raises(ConfigError, match="TrainConfig.det must be a DetConfig"):
        TrainConfig(det={"crop_size": 32})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['size'\] in section 'train.det'"):
        TrainConfig.from_dict({"det": {"size": 3}})


def test_stage_overrides_are_checked():
    with pytest.raises(ConfigError, match="unknown stage 'mid'"):
        TrainConfig(stages={"mid": {"lr": 0.1}})
    with pytest.raises(ConfigError, match=r"unknown key.*learning_rate.*train.stages.det"):
        TrainConfig(stages={"det": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match="lr must be positive"):
        TrainConfig(stages={"highres": {"lr": -1.0}})
    with pytest.raises(ConfigError, match="neg_iou <= pos_iou"):
        TrainConfig(stages={"det": {"det": {"pos_iou": 1e-9}}})


def test_a_stage_override_of_one_det_setting_keeps_the_others():
    tcfg = TrainConfig(det=DetConfig(crop_size=32, random_boxes=8),
                       stages={"det": {"det": {"crop_size": 64}, "batch_size": 4}})
    det = tcfg.for_stage("det")
    assert (det.det.crop_size, det.det.random_boxes, det.batch_size) == (64, 8, 4)
    assert tcfg.for_stage("lowres").det.crop_size == 32
    assert tcfg.for_stage("det").stages == {}


# -- files written before the renames --------------------------------------------------------
OLD_YAML = """
model: {backbone: tiny, input_size: 64, input_height: 0, stride: 8, feat_dim: 16, text_dim: 16,
        embed_dim: 16, cls_dim: 16, width: 8}
train:
  det_iters: 6
  det_crop_size: 32
  det_random_boxes: 8
  det_jitter_boxes: 4
  det_released_init: false
  stages:
    det: {det_crop_size: 48, batch_size: 2}
"""


def test_a_yaml_file_with_the_old_names_loads_as_the_new_ones(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML)
    run = load_config(path)
    assert (run.model.input_width, run.model.input_height) == (64, 64)
    assert run.train.det == DetConfig(crop_size=32, random_boxes=8, jitter_boxes=4,
                                      released_init=False)
    assert run.train.det_iters == 6
    assert run.train.for_stage("det").det.crop_size == 48
    assert run.train.for_stage("det").det.random_boxes == 8
    saved = tmp_path / "saved.yaml"
    save_config(run, saved)
    written = yaml.safe_load(saved.read_text())
    assert "input_size" not in written["model"] and written["model"]["input_width"] == 64
    assert not [key for key in written["train"] if key.startswith("det_") and key != "det_iters"]
    assert load_config(saved) == run


def test_old_and_new_name_of_one_setting_together_are_refused():
    with pytest.raises(ConfigError, match="input_size .*input_width"):
        ModelConfig.from_dict({"input_size": 64, "input_width": 64})
    with pytest.raises(ConfigError, match="det_crop_size .*det.crop_size"):
        TrainConfig.from_dict({"det_crop_size": 32, "det": {"crop_size": 32}})


def test_the_old_tiny_preset_and_its_new_form_are_the_same_run(tmp_path):
    path = tmp_path / "old_tiny.yaml"
    new = load_config("tiny")
    old = {"model": {**{k: v for k, v in new.model.to_dict().items() if k != "input_width"},
                     "input_size": new.model.input_width, "input_height": 0},
           "train": {**{k: v for k, v in new.train.to_dict().items() if k != "det"},
                     **{f"det_{k}": v for k, v in dataclasses.asdict(new.train.det).items()}}}
    path.write_text(yaml.safe_dump(old))
    assert load_config(path) == new


def test_a_checkpoint_written_with_the_old_names_loads(tmp_path):
    # the shipped weights up to 2026-12-03 stored input_size (the width) instead of input_width
    payload = load_checkpoint(default_checkpoint_path())
    width, height = payload["model_config"]["input_width"], payload["model_config"]["input_height"]
    payload["model_config"]["input_size"] = payload["model_config"].pop("input_width")
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert "input_size" in old["model_config"] and "input_width" not in old["model_config"]
    cfg = model_config_of(old)
    assert (cfg.input_width, cfg.input_height) == (width, height) == (384, 288)
    assert cfg.vocab_size == len(old["vocabulary"])
    assert RunConfig(cfg).model.input_shape == (288, 384)
