"""Tests of ``refseg_model.train``: schedule, steps, stage set-up, and whole runs.

The whole runs train the ``tiny`` preset (or a small skip-decoder network) on the shapes
dataset of ``conftest.py``. Killing a run at random moments and resuming it is
``tests/stress/test_train_sigkill.py``.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from refseg_model.checkpoint import load_checkpoint
from refseg_model.cli.train import main as train_cli
from refseg_model.config import ConfigError, ModelConfig, TrainConfig, load_config
from refseg_model.data import open_source
from refseg_model.fastpath import NumericPath
from refseg_model.network import build_model, parameter_groups
from refseg_model.text import Vocabulary
from refseg_model.train import (
    StepContext,
    begin_stage,
    build_dataset,
    coarse_targets,
    evaluate_hook,
    learning_rate_factor,
    make_optimizer,
    stages_of,
    train_step,
    unique_images,
)

SMALL_SKIP = {
    "model": {"backbone": "convnet", "width": 8, "input_width": 64, "input_height": 48,
              "stride": 8, "feat_dim": 16, "text_dim": 16, "embed_dim": 16, "cls_dim": 16,
              "fusion": "concat_product", "decoder": "skip", "decoder_dim": 8},
    "train": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.01, "schedule": "cosine",
              "warmup_iters": 5, "batch_size": 8, "lowres_iters": 0, "highres_iters": 40,
              "aux_weight": 1.0, "expressions_per_image": 4, "checkpoint_every": 20,
              "precision": "fp32"},
}
WORDS = ["<pad>", "<go>", "<eos>", "<unk>"] + [f"w{i}" for i in range(16)]


@pytest.fixture()
def skip_yaml(tmp_path):
    path = tmp_path / "small_skip.yaml"
    path.write_text(yaml.safe_dump(SMALL_SKIP))
    return path


def _args(root, out, *extra):
    return ["--dataset", "referit", "--data-root", str(root), "--out", str(out),
            "--config", "tiny", "--device", "cpu", "--threads", "1", *extra]


def _metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# -- schedule and stages ---------------------------------------------------------------------
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


def test_stage_arguments_name_the_stages_in_order():
    assert stages_of("both") == ["lowres", "highres"]
    assert stages_of("all") == ["det", "lowres", "highres"]
    assert stages_of("det") == ["det"]
    with pytest.raises(ConfigError, match="unknown stage 'mid'"):
        stages_of("mid")


def test_paper_network_trains_what_the_released_code_trains():
    cfg = dataclasses.replace(load_config("paper").model, pretrained=False)
    train = load_config("paper").train
    with torch.device("meta"):  # VGG-16's shapes and names without its 500 MB of weights
        model = build_model(cfg, 8803)
    trained = {}
    for stage in ("det", "lowres", "highres"):
        begin_stage(model, stage, train.for_stage(stage), fresh_model=False, weights_from=None)
        trained[stage] = {n.split(".")[0] + "." + n.split(".")[1]
                          for n, p in model.named_parameters() if p.requires_grad}
    assert trained["det"] == {"expression_encoder.embedding", "expression_encoder.lstm",
                              "classifier.mlp1", "classifier.mlp2", "upsample.deconv"}
    assert trained["lowres"] == trained["highres"] == trained["det"] | {"backbone.head"}
    assert not any(p.requires_grad for p in model.backbone.body.parameters())  # conv1-conv5
    groups = parameter_groups(model, 0.0005, embedding_decay=False)
    decayed = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
    named = dict(model.named_parameters())
    assert id(named["expression_encoder.embedding.weight"]) not in decayed
    for name in ("expression_encoder.lstm.weight_ih_l0", "classifier.mlp1.weight",
                 "backbone.head.0.weight", "upsample.deconv.weight"):
        assert id(named[name]) in decayed, name
    assert not any(id(p) in decayed for n, p in named.items() if n.endswith("bias")
                   or ".bias_" in n)


# -- one step --------------------------------------------------------------------------------
def test_unique_images_and_coarse_targets():
    rows, index = unique_images(["a", "a", "b", "a", "c"])
    assert rows == [0, 2, 4] and index.tolist() == [0, 0, 1, 0, 2]
    labels = torch.zeros(1, 16, 16)
    labels[0, 9, 3] = 1
    coarse = coarse_targets(labels, 8)
    assert coarse.shape == (1, 2, 2) and coarse.tolist() == [[[0, 0], [1, 0]]]


def _skip_step_context(shapes_root, **train):
    tcfg = TrainConfig.from_dict({**SMALL_SKIP["train"], **train}).for_stage("highres")
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(SMALL_SKIP["model"]), len(WORDS)).train()
    vocab = Vocabulary.from_list(WORDS)
    dataset = build_dataset(model.config, tcfg, "highres", vocab,
                            open_source("referit", shapes_root, "train"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=tcfg.batch_size)
    ctx = StepContext(model, model, make_optimizer(model, tcfg), tcfg, "highres",
                      NumericPath("fp32", False), torch.device("cpu"))
    return ctx, next(iter(loader))


def test_train_steps_on_one_batch_fit_it(shapes_root):
    ctx, batch = _skip_step_context(shapes_root)
    assert ctx.aux  # highres with aux_weight: the coarse map's loss is added
    losses = [train_step(ctx, batch, step)[0].item() for step in range(25)]
    assert train_step(ctx, batch)[1] == 8  # samples in the batch
    assert losses[-1] < 0.5 * losses[0]


def test_grad_clip_bounds_the_gradient_norm(shapes_root):
    ctx, batch = _skip_step_context(shapes_root, grad_clip=1e-3, lr=1e-12)
    train_step(ctx, batch)
    norm = torch.linalg.vector_norm(torch.stack([
        torch.linalg.vector_norm(p.grad) for p in ctx.model.parameters() if p.grad is not None]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_a_non_finite_loss_stops_the_step_before_the_weights_change(shapes_root):
    ctx, batch = _skip_step_context(shapes_root)
    before = {k: v.detach().clone() for k, v in ctx.model.named_parameters()}
    batch = dict(batch, mask=torch.full_like(batch["mask"], float("nan")))
    with pytest.raises(FloatingPointError, match="highres step 7: loss is nan"):
        train_step(ctx, batch, step=7)
    assert all(torch.equal(p, before[k]) for k, p in ctx.model.named_parameters())


# -- whole runs ------------------------------------------------------------------------------
def test_tiny_run_loss_falls_and_writes_run_folder(shapes_root, tmp_path):
    out = tmp_path / "run"
    rc = train_cli(_args(shapes_root, out, "--stage", "both", "--lowres-iters", "60",
                         "--highres-iters", "8", "--checkpoint-every", "30",
                         "--val-split", "val", "--lr", "0.1"))
    assert rc == 0
    for name in ("config.yaml", "metrics.jsonl", "loss_curve.png", "last.pt", "lowres.pt",
                 "best.pt"):
        assert (out / name).is_file(), name
    records = _metrics(out)
    low = [r["loss"] for r in records if r["stage"] == "lowres" and "loss" in r]
    assert len(low) == 60
    assert sum(low[-10:]) / 10 < 0.8 * sum(low[:10]) / 10
    vals = [r for r in records if "val_overall_iou" in r]
    assert [(r["stage"], r["step"]) for r in vals] == [("lowres", 30), ("lowres", 60),
                                                       ("highres", 8)]
    last = load_checkpoint(out / "last.pt")
    assert last["stage"] == "highres" and last["train_state"]["step"] == 8
    assert last["train_state"]["best_val"] == max(r["val_overall_iou"] for r in vals)
    assert load_checkpoint(out / "best.pt")["train_state"] is None
    assert load_checkpoint(out / "lowres.pt")["stage"] == "lowres"
    assert load_config(out / "config.yaml").model.vocab_size == len(last["vocabulary"])


def test_resume_continues_exactly_where_the_checkpoint_left(shapes_root, tmp_path):
    """A run stopped at step 10 and resumed to 24 ends with the weights of a run of 24."""
    common = ("--stage", "lowres", "--checkpoint-every", "4", "--batch-size", "4")
    reference = tmp_path / "reference"
    assert train_cli(_args(shapes_root, reference, *common, "--max-iters", "24")) == 0
    split = tmp_path / "split"
    assert train_cli(_args(shapes_root, split, *common, "--max-iters", "10")) == 0
    assert load_checkpoint(split / "last.pt")["train_state"]["step"] == 10
    assert train_cli(_args(shapes_root, split, *common, "--max-iters", "24", "--resume")) == 0
    resumed, ref = load_checkpoint(split / "last.pt"), load_checkpoint(reference / "last.pt")
    assert resumed["train_state"]["step"] == ref["train_state"]["step"] == 24
    for key, value in ref["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, atol=0, rtol=0)
    steps = [r["step"] for r in _metrics(split) if "loss" in r]
    assert steps == list(range(1, 25))
    ref_losses = [r["loss"] for r in _metrics(reference)]
    got_losses = [r["loss"] for r in _metrics(split)]
    assert got_losses == ref_losses


def test_resume_without_checkpoint_is_a_clear_error(shapes_root, tmp_path, capsys):
    assert train_cli(_args(shapes_root, tmp_path / "empty", "--resume")) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun missing")
def test_ddp_two_processes_on_gloo(shapes_root, tmp_path):
    out = tmp_path / "ddp"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [torchrun if os.path.exists(torchrun) else "torchrun", "--standalone",
           "--nproc_per_node", "2",
           "-m", "refseg_model.cli.train",
           *_args(shapes_root, out, "--stage", "lowres", "--max-iters", "6",
                  "--checkpoint-every", "3", "--batch-size", "2")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["last.pt",
                                                                          "lowres.pt"]
    state = load_checkpoint(out / "last.pt")["train_state"]
    assert state["world_size"] == 2 and state["step"] == 6
    steps = [r["step"] for r in _metrics(out) if "loss" in r]
    assert steps == list(range(1, 7))  # written once, by rank 0


def test_validation_leaves_the_model_in_training_untouched(shapes_root, tiny_config):
    """Validation leaves the training model's float32 weights, memory format and mode as they were.

    The hook serves through ``Segmenter``, which converts the weights it gets in place to the
    device's numeric path (bf16 on a CPU with AVX-512 BF16); the next training step must run.
    """
    model = build_model(tiny_config).to(memory_format=torch.channels_last).train()
    before = {name: (p.detach().clone(), p.dtype, p.stride(), p.data_ptr())
              for name, p in model.named_parameters()}
    metrics = evaluate_hook(model, tiny_config, Vocabulary.from_list(WORDS), "lowres",
                            open_source("referit", shapes_root, "val"), torch.device("cpu"), 4)
    assert metrics["num_samples"] == 4 and 0.0 <= metrics["overall_iou"] <= 1.0
    assert model.training
    for name, p in model.named_parameters():
        value, dtype, stride, pointer = before[name]
        assert (p.dtype, p.stride(), p.data_ptr()) == (dtype, stride, pointer), name
        assert torch.equal(p.detach(), value), name
    images = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    tokens = torch.ones(2, tiny_config.max_len, dtype=torch.long)
    model(images, tokens).float().mean().backward()  # float32 weights take float32 images


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
                      "--highres-iters", "100000", "--time-budget", "1", "--device", "cpu",
                      "--threads", "1"]) == 0
    state = load_checkpoint(out / "last.pt")["train_state"]
    steps = [r["step"] for r in _metrics(out) if "loss" in r]
    # the stage ended at the step where the budget ran out (not at its 100000 iterations),
    # and the checkpoint is of that step
    assert steps == list(range(1, state["step"] + 1)) and state["step"] < 100000
    assert state["elapsed_s"] >= 1.0
    # continued with more time: the new budget wins over the stored one (it was ignored
    # before 2026-12-04: a resumed run kept the budget it was started with)
    assert train_cli(["--dataset", "referit", "--data-root", str(shapes_root), "--out",
                      str(out), "--config", str(skip_yaml), "--stage", "highres",
                      "--highres-iters", "100000", "--time-budget", "3", "--device", "cpu",
                      "--threads", "1", "--resume"]) == 0
    more = load_checkpoint(out / "last.pt")["train_state"]
    assert more["train_config"]["time_budget_s"] == 3.0
    assert more["step"] > state["step"] and more["elapsed_s"] >= 3.0
