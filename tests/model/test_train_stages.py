"""Tests of the staged recipe of ``refseg_model.train``: det, lowres, highres in one run.

The runs train on the ReferIt-layout fixture (tests/fixtures/referit, split ``test``, with its
box files) with a tiny network that has the paper's recipe settings: weights carry over from
stage to stage, each stage freezes what the released code freezes and uses its loss weights.
"""

import json
from pathlib import Path

import pytest
import torch
import yaml

from refseg_model.checkpoint import load_checkpoint, model_from_checkpoint
from refseg_model.cli.train import main as train_cli
from refseg_model.config import load_config
from refseg_model.data import open_source
from refseg_model.ddp import ResumableBatchSampler
from refseg_model.detection import RegionScorer
from refseg_model.loss import weighted_logistic_loss
from refseg_model.network import bilinear_kernel, build_model
from refseg_model.rng import seed_everything
from refseg_model.text import Vocabulary
from refseg_model.train import build_dataset

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "referit"

RECIPE = {  # the paper's recipe on the tiny network
    "model": {"backbone": "tiny", "input_width": 64, "stride": 8, "feat_dim": 16,
              "text_dim": 16, "embed_dim": 16, "cls_dim": 16, "spatial": "xy8", "width": 8,
              "freeze_backbone": True, "lstm_forget_bias": 1.0, "learned_pad": True,
              "binarize": "threshold_then_resize"},
    "train": {"lr": 0.05, "batch_size": 4, "det_iters": 6, "lowres_iters": 6,
              "highres_iters": 4, "lr_decay_step": 1000, "checkpoint_every": 0,
              "embedding_weight_decay": False, "det": {"crop_size": 32},
              "stages": {"det": {"batch_size": 8, "w_fg": 1.0, "w_bg": 1.0, "freeze_head": True},
                         "lowres": {"w_fg": 1.0, "w_bg": 1.0},
                         "highres": {"w_fg": 1.0, "w_bg": 1.0 / 3}}},
}


def _recipe(tmp_path, **train):
    data = json.loads(json.dumps(RECIPE))
    data["train"].update(train)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _train(config, out, *extra):
    return train_cli(["--dataset", "referit", "--data-root", str(FIXTURE), "--split", "test",
                      "--out", str(out), "--config", str(config), "--device", "cpu",
                      "--threads", "1", *extra])


def _state(path):
    return load_checkpoint(path)["state_dict"]


def _same(a, b, prefix):
    keys = [k for k in a if k.startswith(prefix)]
    assert keys, prefix
    return all(torch.equal(a[k], b[k]) for k in keys)


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_all_stages_on_the_referit_fixture_freeze_and_transfer(tmp_path):
    config = _recipe(tmp_path)
    out = tmp_path / "run"
    assert _train(config, out, "--stage", "all") == 0
    for name in ("det.pt", "lowres.pt", "last.pt", "config.yaml", "loss_curve.png"):
        assert (out / name).is_file(), name
    stages = [r["stage"] for r in _records(out) if "loss" in r]
    assert stages == ["det"] * 6 + ["lowres"] * 6 + ["highres"] * 4

    # the freshly built model of the run (same seed, same vocabulary)
    run = load_config(config)
    source = open_source("referit", FIXTURE, "test")
    seed_everything(run.train.seed)
    model = build_model(run.model, len(Vocabulary.build(source.expressions())))
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    det, low, high = _state(out / "det.pt"), _state(out / "lowres.pt"), _state(out / "last.pt")
    # conv layers never move; the head (fc6-fc8) is fixed in det and trained afterwards
    assert _same(initial, det, "backbone.body.") and _same(det, high, "backbone.body.")
    assert _same(initial, det, "backbone.head.")
    assert not _same(det, low, "backbone.head.")
    # det trains the text encoder and classifier (from the released initialisation)
    for prefix in ("expression_encoder.embedding.", "expression_encoder.lstm.", "classifier."):
        assert not _same(initial, det, prefix), prefix
    # the deconvolution is only trained in highres, from bilinear upsampling
    kernel = bilinear_kernel(8).view(1, 1, 16, 16)
    assert torch.equal(low["upsample.deconv.weight"], kernel)
    assert not torch.equal(high["upsample.deconv.weight"], kernel)


def _first_batch_loss(model, dataset, tcfg, stage):
    sampler = ResumableBatchSampler(len(dataset), tcfg.batch_size, tcfg.seed, 0, 1, 0)
    batch = torch.utils.data.default_collate([dataset[i] for i in next(iter(sampler))])
    model.eval()
    with torch.no_grad():
        if stage == "det":
            logits = RegionScorer(model)(batch["image"], batch["tokens"],
                                         spatial=batch["spatial"])
        else:
            logits = model(batch["image"], batch["tokens"], stage=stage)
    return logits, batch["mask"]


@pytest.mark.parametrize("stage, weights", [("lowres", (1.0, 1.0)), ("highres", (1.0, 1 / 3))])
def test_stage_starts_from_the_previous_weights_with_its_loss_weights(tmp_path, stage, weights):
    """A stage with a learning rate of 1e-30 keeps its starting weights: compare them."""
    base = tmp_path / "base"
    previous = "det" if stage == "lowres" else "lowres"
    assert _train(_recipe(tmp_path), base, "--stage", previous) == 0
    start = base / f"{previous}.pt"
    frozen = _recipe(tmp_path, stages={**RECIPE["train"]["stages"],
                                       stage: {**RECIPE["train"]["stages"][stage], "lr": 1e-30}})
    out = tmp_path / stage
    assert _train(frozen, out, "--stage", stage, "--init", str(start),
                  f"--{stage}-iters", "1") == 0
    begin, end = _state(start), _state(out / "last.pt")
    for key in begin:
        if key != "upsample.deconv.weight":
            torch.testing.assert_close(end[key], begin[key], rtol=0, atol=1e-20)
    # highres starts from bilinear upsampling (init_referit_seg_highres_from_lowres.py)
    torch.testing.assert_close(end["upsample.deconv.weight"],
                               bilinear_kernel(8).view(1, 1, 16, 16), rtol=0, atol=1e-20)

    # the loss of the first step used the stage's weights
    payload = load_checkpoint(out / "last.pt")
    model = model_from_checkpoint(payload)
    run = load_config(frozen)
    tcfg = run.train.for_stage(stage)
    assert (tcfg.w_fg, tcfg.w_bg) == pytest.approx(weights)
    vocab = Vocabulary.from_list(payload["vocabulary"])
    dataset = build_dataset(model.config, tcfg, stage, vocab, open_source(
        "referit", FIXTURE, "test"))
    logits, labels = _first_batch_loss(model, dataset, tcfg, stage)
    recorded = [r["loss"] for r in _records(out) if "loss" in r][0]
    assert recorded == pytest.approx(
        weighted_logistic_loss(logits, labels, *weights).item(), rel=1e-4)
    if weights != (3.0, 1.0):
        assert recorded != pytest.approx(
            weighted_logistic_loss(logits, labels, 3.0, 1.0).item(), rel=1e-3)


def test_det_stage_resumes_and_continues_into_lowres(tmp_path):
    config = _recipe(tmp_path)
    out = tmp_path / "run"
    assert _train(config, out, "--stage", "all", "--det-iters", "3", "--lowres-iters", "0",
                  "--highres-iters", "0") == 0
    assert load_checkpoint(out / "last.pt")["stage"] == "det"
    assert _train(config, out, "--stage", "all", "--resume", "--lowres-iters", "2") == 0
    assert load_checkpoint(out / "last.pt")["stage"] == "lowres"
    stages = [(r["stage"], r["step"]) for r in _records(out) if "loss" in r]
    assert stages == [("det", 1), ("det", 2), ("det", 3), ("lowres", 1), ("lowres", 2)]
