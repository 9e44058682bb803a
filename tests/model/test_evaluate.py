"""Tests of the evaluation loop and ``refseg-eval`` on the ReferIt fixture."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from refseg_model.baselines import whole_image
from refseg_model.cli import evaluate as cli
from refseg_model.data import open_source
from refseg_model.evaluate import evaluate
from refseg_model.metrics import KEYS

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "referit"


def _gt(region_key):
    return scipy.io.loadmat(FIXTURE / "mask" / f"{region_key}.mat")["segimg_t"] == 0


def test_oracle_half_and_half_by_hand(tmp_path):
    source = open_source("referit", FIXTURE, "test")
    queries = json.loads((FIXTURE / "referit_query_test.json").read_text())
    oracle = {e: _gt(k) for k, exprs in queries.items() for e in exprs}
    right = {"sky", "ground", "dude", "-bridge"}

    def predict(rgb, expression):
        if expression in right:
            return oracle[expression]
        return np.zeros(rgb.shape[:2], bool)  # I = 0, U = |gt|

    metrics = evaluate(predict, source, save_masks=tmp_path / "m", progress=False)
    gts = {s.sample_id: _gt(f"{s.image_id}_{s.region_id}") for s in source.samples}
    hit = [s.sample_id for s in source.samples if s.expression in right]
    assert len(hit) == 4 and metrics["num_samples"] == 10
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        assert metrics[f"prec@{t}"] == pytest.approx(0.4)
    assert metrics["mean_iou"] == pytest.approx(0.4)
    total_i = sum(int(gts[i].sum()) for i in hit)
    total_u = sum(int(g.sum()) for g in gts.values())
    assert metrics["overall_iou"] == pytest.approx(total_i / total_u)
    pngs = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert pngs == sorted(f"{s.sample_id}.png" for s in source.samples)
    saved = cv2.imread(str(tmp_path / "m" / "6882_1_0.png"), cv2.IMREAD_UNCHANGED)
    assert saved.dtype == np.uint8 and saved.shape == (64, 48)
    np.testing.assert_array_equal(saved == 255, gts["6882_1_0"])
    assert set(np.unique(saved)) == {0, 255}


def test_limit_and_wrong_sized_prediction():
    source = open_source("referit", FIXTURE, "test")
    assert evaluate(whole_image, source, progress=False, limit=3)["num_samples"] == 3
    with pytest.raises(ValueError, match=r"38100.jpg|38677.jpg|6882.jpg"):
        evaluate(lambda rgb, e: np.ones((5, 5), bool), source, progress=False)


def test_cli_whole_image_matches_hand_computation(tmp_path, capsys):
    out = tmp_path / "sub" / "metrics.json"
    rc = cli.main(["--dataset", "referit", "--data-root", str(FIXTURE), "--split", "test",
                   "--baseline", "whole-image", "--json", str(out), "--save-masks",
                   str(tmp_path / "masks"), "--no-progress"])
    assert rc == 0
    metrics = json.loads(out.read_text())
    assert list(metrics)[:len(KEYS)] == list(KEYS)
    assert set(metrics) - set(KEYS) == {"found_share", "present", "no_target"}
    assert metrics["found_share"] == 1.0  # the whole image is an answer everywhere
    assert metrics["no_target"] == {"num_samples": 0, "found_share": 0.0}
    source = open_source("referit", FIXTURE, "test")
    areas = [int(_gt(f"{s.image_id}_{s.region_id}").sum()) for s in source.samples]
    pixels = 64 * 48  # every fixture image is 64x48 or 48x64
    assert metrics["num_samples"] == 10
    assert metrics["overall_iou"] == pytest.approx(sum(areas) / (10 * pixels))
    assert metrics["mean_iou"] == pytest.approx(np.mean(areas) / pixels)
    assert max(areas) / pixels < 0.5 and metrics["prec@0.5"] == 0.0
    printed = capsys.readouterr().out
    assert "whole-image" in printed and f"{100 * metrics['overall_iou']:.2f}%" in printed
    mask = cv2.imread(str(tmp_path / "masks" / "38100_2_0.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (48, 64) and (mask == 255).all()
    assert not list(out.parent.glob(".*tmp"))


def test_cli_errors_name_the_problem(tmp_path, capsys):
    rc = cli.main(["--dataset", "referit", "--data-root", str(tmp_path), "--baseline",
                   "whole-image", "--no-progress"])
    assert rc == 2 and "referit_query_test.json" in capsys.readouterr().err
    rc = cli.main(["--dataset", "referit", "--data-root", str(FIXTURE), "--checkpoint",
                   str(tmp_path / "nope.pt"), "--no-progress"])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err
    rc = cli.main(["--dataset", "referit", "--data-root", str(FIXTURE), "--no-progress"])
    assert rc == 2 and "--checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "--save-masks" in capsys.readouterr().out


def test_cli_scores_a_model_checkpoint(tmp_path, capsys):
    from refseg_model.checkpoint import make_payload, save_checkpoint
    from refseg_model.config import load_config
    from refseg_model.network import build_model
    from refseg_model.text import Vocabulary

    cfg = load_config("tiny").model
    vocab = Vocabulary.build(open_source("referit", FIXTURE, "test").expressions())
    model = build_model(cfg, len(vocab))
    ckpt = save_checkpoint(make_payload(model, cfg, vocab.to_list(), "highres"),
                           tmp_path / "tiny.pt")
    out = tmp_path / "m.json"
    rc = cli.main(["--checkpoint", str(ckpt), "--dataset", "referit", "--data-root",
                   str(FIXTURE), "--device", "cpu", "--json", str(out), "--no-progress",
                   "--save-masks", str(tmp_path / "masks")])
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads(out.read_text())
    assert metrics["num_samples"] == 10
    assert 0.0 <= metrics["overall_iou"] <= 1.0
    assert len(list((tmp_path / "masks").glob("*.png"))) == 10
    assert "tiny" in capsys.readouterr().out
