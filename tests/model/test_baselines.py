"""Tests of the whole-image and per-word baselines."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from refseg_model import baselines
from refseg_model.baselines import (
    PerWordSegmenter,
    combine_word_maps,
    frequent_words,
    train_per_word,
    whole_image,
)
from refseg_model.checkpoint import CheckpointError
from refseg_model.cli import baselines as baselines_cli
from refseg_model.cli import evaluate as cli
from refseg_model.config import load_config
from refseg_model.data import open_source
from refseg_model.evaluate import evaluate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "referit"


def test_whole_image_on_fixture_by_hand():
    source = open_source("referit", FIXTURE, "test")
    metrics = evaluate(whole_image, source, progress=False)
    # the rectangles drawn by make_fixture.py, each image 3072 pixels
    areas = {"6882_1": 30 * 12, "6882_2": 20 * 48, "38677_1": 18 * 64, "38677_2": 16 * 64,
             "38677_3": 14 * 64, "38100_3": 6 * 64}
    bridge = scipy.io.loadmat(FIXTURE / "mask" / "38100_1.mat")["segimg_t"] == 0
    areas["38100_1"] = int(bridge.sum())
    areas["38100_2"] = 24 * 64 - int(bridge[:24].sum())
    areas["38100_4"] = int((scipy.io.loadmat(FIXTURE / "mask" / "38100_4.mat")["segimg_t"]
                            == 0).sum())
    per_sample = [areas[f"{s.image_id}_{s.region_id}"] / 3072 for s in source.samples]
    assert metrics["mean_iou"] == pytest.approx(np.mean(per_sample))
    assert metrics["overall_iou"] == pytest.approx(sum(per_sample) / 10)
    assert metrics["prec@0.5"] == 0.0


def test_combination_rules_on_hand_made_maps():
    maps = np.zeros((3, 2, 4), np.float32)
    maps[0] = [[0.9, 0.9, 0.1, 0.1], [0.9, 0.2, 0.6, 0.0]]
    maps[1] = [[0.9, 0.1, 0.9, 0.1], [0.6, 0.8, 0.6, 0.0]]
    maps[2] = [[0.9, 0.6, 0.1, 0.9], [0.3, 0.9, 0.6, 0.0]]
    masks = maps >= 0.5
    np.testing.assert_array_equal(combine_word_maps(maps, "intersection") >= 0.5,
                                  masks.all(axis=0))
    np.testing.assert_array_equal(combine_word_maps(maps, "union") >= 0.5, masks.any(axis=0))
    np.testing.assert_array_equal(combine_word_maps(maps, "average") >= 0.5,
                                  [[True, True, False, False], [True, True, True, False]])
    np.testing.assert_allclose(combine_word_maps(maps, "average")[0, 1], (0.9 + 0.1 + 0.6) / 3)
    with pytest.raises(ValueError, match="unknown combination"):
        combine_word_maps(maps, "max")
    with pytest.raises(ValueError, match="K >= 1"):
        combine_word_maps(np.zeros((0, 2, 2)), "union")


def test_frequent_words_skip_stop_words_and_punctuation():
    exprs = ["the red cup", "red ball on the left", "left cup", "a red - thing", "cup"]
    assert frequent_words(exprs, 3) == ["cup", "red", "left"]
    assert "the" not in frequent_words(exprs, 100) and "-" not in frequent_words(exprs, 100)


def _write_toy_referit(root: Path, n_images: int = 8) -> None:
    """Red and blue squares at random places on grey 64x64 images, in the ReferIt layout."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "mask").mkdir()
    queries = {}
    for i in range(n_images):
        image_id = str(1000 + i)
        img = np.full((64, 64, 3), 128, np.uint8)
        for region, (name, bgr) in enumerate([("red", (0, 0, 255)), ("blue", (255, 0, 0))], 1):
            y, x = rng.integers(0, 40, 2)
            img[y:y + 24, x:x + 24] = bgr
            mask = np.ones((64, 64), np.uint8)
            mask[y:y + 24, x:x + 24] = 0
            scipy.io.savemat(root / "mask" / f"{image_id}_{region}.mat", {"segimg_t": mask})
            queries[f"{image_id}_{region}"] = [f"{name} square", f"the {name} one"]
        # the second square is drawn over the first: fix the first region's mask
        first = scipy.io.loadmat(root / "mask" / f"{image_id}_1.mat")["segimg_t"]
        second = scipy.io.loadmat(root / "mask" / f"{image_id}_2.mat")["segimg_t"]
        first[second == 0] = 1
        scipy.io.savemat(root / "mask" / f"{image_id}_1.mat", {"segimg_t": first})
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), img)
    (root / "referit_query_train.json").write_text(json.dumps(queries))
    (root / "referit_train_imlist.txt").write_text(
        "".join(f"{1000 + i}\n" for i in range(n_images)))


def test_tiny_per_word_training_loss_falls_and_predicts(tmp_path):
    _write_toy_referit(tmp_path / "toy")
    source = open_source("referit", tmp_path / "toy", "train")
    cfg = load_config("tiny").model
    result = train_per_word(source, cfg, tmp_path / "run", 40, num_words=5, batch_size=4,
                            lr=0.05, device="cpu", progress=False)
    losses = result["losses"]
    assert len(losses) == 40
    assert result["words"] == ["blue", "red", "square"]  # "the", "one": stop words
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    payload = torch.load(result["checkpoint"], weights_only=True)
    assert payload["words"] == result["words"]
    assert json.loads((tmp_path / "run" / "perword_losses.json").read_text()) == losses
    seg = PerWordSegmenter.from_checkpoint(result["checkpoint"], device="cpu")
    image = source.load_image(source.samples[0])
    assert seg.known_words("the red red square") == ["red", "square"]
    assert not seg.predict(image, "zebra").any()  # no known word: empty mask
    for rule in ("average", "intersection", "union"):
        mask = seg.predict(image, "red square", rule)
        assert mask.shape == (64, 64) and mask.dtype == bool
    assert (seg.predict(image, "red square", "union")
            >= seg.predict(image, "red square", "intersection")).all()
    metrics = evaluate(seg.predictor("average"), source, progress=False)
    assert metrics["num_samples"] == 32


def test_module_cli_train_then_refseg_eval(tmp_path, capsys):
    rc = baselines_cli.main(["train", "--dataset", "referit", "--data-root", str(FIXTURE),
                             "--split", "test", "--out", str(tmp_path / "pw"), "--config",
                             "tiny", "--max-iters", "2", "--batch-size", "2", "--device", "cpu"])
    assert rc == 0
    ckpt = tmp_path / "pw" / "perword.pt"
    assert ckpt.is_file() and "perword.pt" in capsys.readouterr().out
    out = tmp_path / "pw.json"
    rc = cli.main(["--checkpoint", str(ckpt), "--baseline", "per-word-union", "--dataset",
                   "referit", "--data-root", str(FIXTURE), "--json", str(out), "--no-progress",
                   "--device", "cpu"])
    assert rc == 0 and json.loads(out.read_text())["num_samples"] == 10
    assert "per-word-union" in capsys.readouterr().out
    rc = cli.main(["--baseline", "per-word-average", "--dataset", "referit", "--data-root",
                   str(FIXTURE), "--no-progress"])
    assert rc == 2 and "needs --checkpoint" in capsys.readouterr().err


def test_per_word_checkpoint_checks(tmp_path):
    model_ckpt = tmp_path / "other.pt"
    torch.save({"format": "refseg-checkpoint", "version": 1}, model_ckpt)
    with pytest.raises(CheckpointError, match="not a per-word"):
        PerWordSegmenter.from_checkpoint(model_ckpt)
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="bad.pt"):
        PerWordSegmenter.from_checkpoint(tmp_path / "bad.pt")
    assert cli.BASELINES == baselines.BASELINES
