"""Tests of ``refseg_model.checkpointer``: the run's checkpoints and where a resumed run starts."""

import json

import pytest
import torch

from refseg_model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from refseg_model.checkpointer import Checkpointer, ResumeState
from refseg_model.cli.train import main as train_cli
from refseg_model.config import LEGACY_DET_KEYS, TrainConfig
from refseg_model.ddp import DistInfo
from refseg_model.network import build_model
from refseg_model.run_files import RunFiles

WORDS = ["<pad>", "<go>", "<eos>", "<unk>"] + [f"w{i}" for i in range(16)]


def _payload(stage, step, iters):
    tcfg = TrainConfig(lowres_iters=iters, highres_iters=iters)
    state = {"step": step, "optimizer": {"state": {}, "param_groups": []}, "elapsed_s": 12.5,
             "best_val": 0.4, "train_config": tcfg.to_dict()}
    return {"stage": stage, "train_state": state}, tcfg


def test_a_run_resumes_inside_the_stage_of_its_checkpoint():
    payload, tcfg = _payload("lowres", 7, 10)
    start = ResumeState.from_checkpoint(payload, ["lowres", "highres"], tcfg)
    assert (start.stage_index, start.step, start.elapsed_s, start.best_val) == (0, 7, 12.5, 0.4)
    assert start.optimizer is not None and start.mid_stage and not start.fresh_model
    following = start.next_stage("lowres")
    assert (following.stage_index, following.step, following.optimizer) == (1, 0, None)
    assert (following.elapsed_s, following.best_val, following.weights_from) == (0.0, 0.4,
                                                                                   "lowres")


def test_a_checkpoint_at_the_end_of_its_stage_resumes_with_the_next_stage():
    payload, tcfg = _payload("lowres", 10, 10)
    start = ResumeState.from_checkpoint(payload, ["lowres", "highres"], tcfg)
    assert (start.stage_index, start.step, start.optimizer, start.elapsed_s) == (1, 0, None, 0.0)
    assert start.weights_from == "lowres" and not start.mid_stage


def test_a_checkpoint_of_a_stage_outside_the_run_is_refused():
    payload, tcfg = _payload("det", 3, 10)
    with pytest.raises(CheckpointError, match="stage det, not in the stages"):
        ResumeState.from_checkpoint(payload, ["lowres", "highres"], tcfg)


def test_checkpointer_writes_last_best_and_stage_files(tmp_path, tiny_config):
    files = RunFiles(tmp_path / "run", DistInfo())
    model = build_model(tiny_config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    saver = Checkpointer(files, DistInfo(), WORDS, TrainConfig(lowres_iters=4))
    files.add_metrics({"stage": "lowres", "step": 1, "loss": 0.5})
    saver.save(model, optimizer, "lowres", 2, elapsed_s=1.0, stage_end=False,
               val={"overall_iou": 0.3})
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1  # flushed
    saver.save(model, optimizer, "lowres", 3, elapsed_s=2.0, stage_end=False,
               val={"overall_iou": 0.2})
    best = load_checkpoint(tmp_path / "run" / "best.pt")  # of step 2: 0.2 did not improve
    assert best["train_state"] is None and best["stage"] == "lowres"
    assert saver.best_val == 0.3 and not (tmp_path / "run" / "lowres.pt").exists()
    saver.save(model, optimizer, "lowres", 4, elapsed_s=3.0, stage_end=True)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    state = last["train_state"]
    assert (last["stage"], state["step"], state["stage_index"], state["best_val"]) == (
        "lowres", 4, 1, 0.3)
    assert state["elapsed_s"] == 3.0 and set(state["rng"]) >= {"python", "numpy", "torch"}
    assert TrainConfig.from_dict(state["train_config"]).lowres_iters == 4
    assert last["model_config"]["vocab_size"] == len(WORDS) == len(last["vocabulary"])
    assert load_checkpoint(tmp_path / "run" / "lowres.pt")["train_state"] is None


def test_a_checkpoint_written_before_the_renames_resumes_exactly(shapes_root, tmp_path):
    """``input_size`` and flat ``det_*`` keys in ``last.pt`` (older refseg-train) still resume."""
    def args(out, iters, *extra):
        return ["--dataset", "referit", "--data-root", str(shapes_root), "--out", str(out),
                "--config", "tiny", "--device", "cpu", "--threads", "1", "--stage", "lowres",
                "--checkpoint-every", "3", "--max-iters", str(iters), *extra]

    assert train_cli(args(tmp_path / "reference", 9)) == 0
    old = tmp_path / "old"
    assert train_cli(args(old, 6)) == 0
    payload = load_checkpoint(old / "last.pt")
    model_config = dict(payload["model_config"])
    model_config["input_size"] = model_config.pop("input_width")
    model_config["input_height"] = 0
    train_config = dict(payload["train_state"]["train_config"])
    for flat, nested in LEGACY_DET_KEYS.items():
        train_config[flat] = train_config["det"][nested]
    del train_config["det"]
    payload["model_config"] = model_config
    payload["train_state"] = dict(payload["train_state"], train_config=train_config)
    save_checkpoint(payload, old / "last.pt")

    assert train_cli(args(old, 9, "--resume")) == 0
    resumed, reference = load_checkpoint(old / "last.pt"), load_checkpoint(
        tmp_path / "reference" / "last.pt")
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    assert resumed["model_config"]["input_width"] == 64
    losses = [[json.loads(line)["loss"] for line in (run / "metrics.jsonl").open()]
              for run in (old, tmp_path / "reference")]
    assert losses[0] == losses[1]
