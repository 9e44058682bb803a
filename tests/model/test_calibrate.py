"""Tests of ``refseg_model.calibrate``: the threshold is chosen on validation, stored and used."""

import pytest
import yaml

from refseg_model.calibrate import best_threshold, threshold_sweep, write_threshold
from refseg_model.checkpoint import CheckpointError, load_checkpoint
from refseg_model.cli.train import main as train_cli
from refseg_model.data import open_source
from refseg_model.evaluate import evaluate
from refseg_model.inference import Segmenter

SMALL = {
    "model": {"backbone": "tiny", "input_width": 64, "input_height": 48, "stride": 8,
              "feat_dim": 16, "text_dim": 16, "embed_dim": 16, "cls_dim": 16, "width": 8},
    "train": {"lr": 0.1, "batch_size": 8, "lowres_iters": 0, "highres_iters": 40,
              "checkpoint_every": 0, "precision": "fp32"},
}


def _metrics(prec, mean_iou):
    return {"prec@0.5": prec, "mean_iou": mean_iou, "num_samples": 10}


def test_best_threshold_takes_prec_then_mean_iou_then_the_one_nearest_one_half():
    assert best_threshold({0.3: _metrics(0.6, 0.5), 0.5: _metrics(0.5, 0.9)}) == 0.3
    assert best_threshold({0.3: _metrics(0.6, 0.5), 0.6: _metrics(0.6, 0.55)}) == 0.6
    assert best_threshold({0.3: _metrics(0.6, 0.5), 0.6: _metrics(0.6, 0.5),
                           0.45: _metrics(0.6, 0.5)}) == 0.45
    with pytest.raises(ValueError, match="empty"):
        best_threshold({})


def test_calibrated_threshold_is_chosen_stored_and_used(shapes_root, tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "run"
    assert train_cli(["--dataset", "referit", "--data-root", str(shapes_root), "--out",
                      str(out), "--config", str(config), "--stage", "highres",
                      "--device", "cpu", "--threads", "1"]) == 0
    ckpt = out / "last.pt"
    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
    assert segmenter.threshold == 0.5  # nothing stored yet
    source = open_source("referit", shapes_root, "val")
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        threshold_sweep(segmenter, source, grid=(0.5, 1.0))
    sweep = threshold_sweep(segmenter, source, grid=(0.7, 0.3, 0.5), limit=16)
    assert sorted(sweep) == [0.3, 0.5, 0.7] and all(m["num_samples"] == 16
                                                    for m in sweep.values())
    # the sweep at 0.5 scores the masks the segmenter predicts at its threshold 0.5
    scored = evaluate(lambda image, expression: segmenter.predict(image, expression).mask,
                      source, progress=False, limit=16)
    for key in ("overall_iou", "mean_iou", "prec@0.5"):
        assert sweep[0.5][key] == pytest.approx(scored[key]), key
    best = best_threshold(sweep)
    assert sweep[best]["prec@0.5"] == max(m["prec@0.5"] for m in sweep.values())
    write_threshold(ckpt, 0.35, sweep)
    assert Segmenter.from_checkpoint(ckpt, device="cpu").threshold == pytest.approx(0.35)
    assert Segmenter.from_checkpoint(ckpt, device="cpu", threshold=0.6).threshold == 0.6
    payload = load_checkpoint(ckpt)
    assert payload["threshold_sweep"]["0.50"]["num_samples"] == 16
    assert payload["train_state"] is not None  # the rest of the checkpoint is kept
    write_threshold(ckpt, 1.5)
    with pytest.raises(CheckpointError, match="threshold"):
        Segmenter.from_checkpoint(ckpt, device="cpu")


def test_calibrate_chooses_and_explains_a_found_rule_on_no_target_commands(tmp_path, capsys):
    """``refseg-calibrate`` on a split with no-target commands: a found rule, its trade-off."""
    from refseg_model.calibrate import MIN_PEAK_GRID
    from refseg_model.calibrate import main as calibrate_cli
    from refseg_model.synth.writer import write_dataset

    data = tmp_path / "synth"
    write_dataset(data, 6, seed=11, width=96, height=72, val_frac=0.5, test_frac=0.0,
                  progress=False)
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "train": {**SMALL["train"], "highres_iters": 4}}))
    out = tmp_path / "run"
    assert train_cli(["--dataset", "synthetic", "--data-root", str(data), "--out", str(out),
                      "--config", str(config), "--stage", "highres", "--device", "cpu",
                      "--threads", "1"]) == 0
    capsys.readouterr()
    checkpoint = out / "last.pt"
    assert calibrate_cli(["--checkpoint", str(checkpoint), "--dataset", "synthetic",
                          "--data-root", str(data), "--split", "val", "--limit", "0",
                          "--write", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "found rule at threshold" in printed
    trade_off = printed.split("the peak's trade-off")[1].splitlines()[1:1 + len(MIN_PEAK_GRID)]
    assert [float(line.split()[0]) for line in trade_off] == list(MIN_PEAK_GRID)
    assert sum("<- chosen" in line for line in trade_off) == 1
    caps = printed.split("the cap's trade-off")[1].splitlines()[1:6]
    assert [line.split()[0] for line in caps] == ["5.0%", "4.0%", "3.0%", "2.0%", "1.0%"]
    payload = load_checkpoint(checkpoint)
    assert set(payload["found_rule"]) == {"min_area", "min_peak", "min_landmark_peak"}
    chosen = next(line for line in trade_off if "<- chosen" in line)
    assert float(chosen.split()[0]) == payload["found_rule"]["min_peak"]
    # a cap of 0: no no-target command may be answered found, if any rule of the grid can
    args = ["--checkpoint", str(checkpoint), "--dataset", "synthetic", "--data-root", str(data),
            "--split", "val", "--limit", "0", "--no-progress"]
    assert calibrate_cli(args + ["--max-found", "0"]) == 0
    strict = capsys.readouterr().out
    worst = float(strict.split("worst no-target kind answered found ")[1].split("%")[0])
    assert worst == 0.0 or "no rule of the grid keeps every no-target kind at or under 0.0%" \
        in strict
    assert calibrate_cli(args + ["--max-found", "1.5"]) == 2
    assert "--max-found must be a share" in capsys.readouterr().err
