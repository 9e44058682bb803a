"""A real camera's frames: photometric augmentation, named perturbations, inputs of any aspect."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from refseg_model.augment import PERTURBATIONS, ExposureDraw, perturb, photometric
from refseg_model.config import ConfigError, TrainConfig, load_config
from refseg_model.data import open_source
from refseg_model.data.base import RefSegDataset
from refseg_model.ddp import GroupedBatchSampler
from refseg_model.inference import Segmenter
from refseg_model.network import build_model
from refseg_model.preprocess import aspect_input_shape
from refseg_model.synth import generate_scene
from refseg_model.synth.objects import COLOURS
from refseg_model.synth.writer import image_sizes, write_dataset
from refseg_model.text import Vocabulary


def _hue(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.reshape(1, -1, 3), cv2.COLOR_RGB2HSV_FULL)[0, :, 0].astype(int)


def _nearest_colour_name(rgb_pixels: np.ndarray) -> list[str]:
    names = list(COLOURS)
    hues = _hue((np.array([COLOURS[n] for n in names]) * 255).astype(np.uint8))
    pix = _hue(rgb_pixels)
    out = []
    for h in pix:
        d = np.minimum(abs(hues - h), 256 - abs(hues - h))
        out.append(names[int(np.argmin(d))])
    return out


def test_photometric_changes_pictures_but_never_renames_a_saturated_colour():
    chromatic = [n for n in COLOURS if n not in ("white", "black")]
    swatch = (np.array([COLOURS[n] for n in chromatic]) * 200).astype(np.uint8)
    image = np.repeat(np.repeat(swatch[None], 32, axis=0), 32, axis=1)  # 32 x (32*6) x 3
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(60):
        out = photometric(image, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        changed += not np.array_equal(out, image)
        centres = out[16, 16::32]  # the middle of each swatch
        assert _nearest_colour_name(centres) == _nearest_colour_name(image[16, 16::32])
    assert 20 <= changed <= 55  # about a third are left clean


def test_exposure_draw_default_is_the_old_draw_and_two_sided_favours_the_ends():
    # the default consumes the generator exactly as the draw before ExposureDraw existed
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(200):
        expected = (float(np.exp(b.uniform(np.log(0.55), np.log(1.4))))
                    if b.random() < 0.6 else None)
        assert ExposureDraw().draw(a) == expected
    rng = np.random.default_rng(0)
    two = ExposureDraw(0.55, 1.45, 0.75, two_sided=True)
    gains = np.array([g for g in (two.draw(rng) for _ in range(4000)) if g is not None])
    assert 0.72 < len(gains) / 4000 < 0.78
    assert gains.min() >= 0.55 and gains.max() <= 1.45
    assert 0.45 < (gains > 1.0).mean() < 0.55  # darker or brighter with equal odds
    assert 0.17 < (gains >= 1.25).mean() < 0.24  # against 0.12 for the one-sided draw


def test_exposure_config_is_checked():
    assert TrainConfig(exposure={"high": 1.45, "two_sided": True}).to_dict()["exposure"] == {
        "high": 1.45, "two_sided": True}
    with pytest.raises(ConfigError, match="exposure.*low <= 1 <= high"):
        TrainConfig(exposure={"low": 1.2})
    with pytest.raises(ConfigError, match="exposure.*unexpected keyword"):
        TrainConfig(exposure={"gain": 2})


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_each_named_condition_is_deterministic_and_changes_the_image(name):
    scene = generate_scene((5, 0), 160, 120)
    a, b = perturb(scene.rgb, name), perturb(scene.rgb, name)
    np.testing.assert_array_equal(a, b)
    assert a.shape == scene.rgb.shape and a.dtype == np.uint8
    assert not np.array_equal(a, scene.rgb)


def test_exposure_scales_and_unknown_condition_is_refused():
    grey = np.full((4, 4, 3), 100, np.uint8)
    assert int(perturb(grey, "exposure0.6")[0, 0, 0]) == 60
    assert int(perturb(grey, "exposure1.3")[0, 0, 0]) == 130
    with pytest.raises(ValueError, match="unknown perturbation 'fog'.*noise8"):
        perturb(grey, "fog")


@pytest.mark.parametrize("size,expected", [((480, 640), (240, 320)), ((720, 1280), (208, 368)),
                                           ((240, 320), (240, 320)), ((500, 500), (280, 280))])
def test_aspect_input_keeps_the_pixel_budget(size, expected):
    shape = aspect_input_shape(*size, 320 * 240, 8)
    assert shape == expected
    assert shape[0] % 8 == 0 and shape[1] % 8 == 0
    assert abs(shape[0] * shape[1] / (320 * 240) - 1) < 0.06


def test_keep_aspect_segmenter_takes_a_16_9_frame_without_letterbox_padding():
    cfg = load_config("tiny").model  # a square input (input_height = input_width)
    cfg.keep_aspect = True
    torch.manual_seed(0)
    seg = Segmenter(build_model(cfg, 8), Vocabulary.from_list(["<pad>", "<go>", "<eos>", "<unk>",
                                                               "cup"]), cfg, compile="off",
                    precision="fp32")
    wide = np.zeros((72, 128, 3), np.uint8)
    boxed, meta = seg._image(wide)
    assert meta.pad_top == 0 and meta.pad_left == 0  # the content fills the input
    assert boxed.shape[:2] == cfg.input_shape_for(72, 128)
    assert boxed.shape[1] > boxed.shape[0]  # wider than high
    square = np.zeros((64, 64, 3), np.uint8)
    preds = seg.predict_batch([wide, square], ["cup", "cup"])  # two shapes in one call
    assert preds[0].mask.shape == (72, 128) and preds[1].mask.shape == (64, 64)


def test_wide_scenes_are_drawn_for_their_share_and_read_back(tmp_path):
    sizes = image_sizes(400, 9, (64, 48), (80, 45), 0.3)
    assert 0.22 < sizes.count((80, 45)) / 400 < 0.38
    assert image_sizes(400, 9, (64, 48), (80, 45), 0.3) == sizes  # from (seed, index) only
    meta = write_dataset(tmp_path / "ds", 12, seed=9, width=64, height=48, val_frac=0.0,
                         test_frac=0.0, progress=False, wide=(80, 45), wide_frac=0.5)
    assert meta["wide"] == [80, 45] and meta["wide_frac"] == 0.5
    source = open_source("synthetic", tmp_path / "ds", "train")
    shapes = {source.image_size(s) for s in source.samples}
    assert shapes == {(48, 64), (45, 80)}
    for sample in source.samples[:20]:
        assert source.load_image(sample).shape[:2] == source.image_size(sample)
    assert json.loads((tmp_path / "ds" / "meta.json").read_text())["wide_frac"] == 0.5


def test_batches_keep_one_input_shape_and_follow_the_kind_weights():
    groups = [[4 * g + k for k in range(4)] for g in range(10)]
    buckets = [g % 2 for g in range(10)]  # even images 4:3, odd 16:9
    weights = [9.0 if i % 4 == 0 else 1.0 for i in range(40)]  # sample 0 of each image: heavy
    sampler = GroupedBatchSampler(groups, 2, 1, seed=3, buckets=buckets, weights=weights)
    it = iter(sampler)
    firsts = 0
    for _ in range(300):
        batch = next(it)
        assert len({buckets[i // 4] for i in batch}) == 1
        firsts += sum(i % 4 == 0 for i in batch)
    assert firsts / 600 > 0.6  # 9 / (9 + 3) = 0.75 expected, 0.25 if the weights were ignored
    # resumable: the batches from step 7 on are the same whether started there or not
    again = iter(GroupedBatchSampler(groups, 2, 1, seed=3, buckets=buckets, weights=weights,
                                     start_step=7))
    fresh = iter(GroupedBatchSampler(groups, 2, 1, seed=3, buckets=buckets, weights=weights))
    for _ in range(7):
        next(fresh)
    assert [next(again) for _ in range(5)] == [next(fresh) for _ in range(5)]


def test_dataset_gives_each_image_its_aspect_input_and_augments(tmp_path):
    write_dataset(tmp_path / "ds", 8, seed=4, width=64, height=48, val_frac=0.0, test_frac=0.0,
                  progress=False, wide=(80, 48), wide_frac=0.5)
    cfg = load_config("tiny").model
    cfg.keep_aspect, cfg.input_width, cfg.input_height = True, 64, 48
    source = open_source("synthetic", tmp_path / "ds", "train")
    vocab = Vocabulary.build(source.expressions())
    plain = RefSegDataset(source, vocab, 64, stride=cfg.stride, input_height=48,
                          input_shape_for=cfg.input_shape_for)
    jittered = RefSegDataset(source, vocab, 64, stride=cfg.stride, input_height=48,
                             input_shape_for=cfg.input_shape_for, photometric=True, seed=1)
    shapes, differ = set(), 0
    for i in range(0, len(source), 5):
        item = plain[i]
        h, w = source.image_size(source.samples[item["index"]])
        assert tuple(item["image"].shape[1:]) == cfg.input_shape_for(h, w)
        assert item["mask"].shape == item["image"].shape[1:]
        shapes.add(tuple(item["image"].shape[1:]))
        differ += not torch.equal(item["image"], jittered[i]["image"])
        torch.testing.assert_close(item["mask"], jittered[i]["mask"])  # labels untouched
    assert len(shapes) == 2 and differ > 0
