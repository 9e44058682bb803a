"""Tests of training: the loss falls, resume after SIGKILL is exact, DDP on gloo."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from refseg_model.checkpoint import load_checkpoint
from refseg_model.cli.train import main as train_cli


def _args(root, out, *extra):
    return ["--dataset", "referit", "--data-root", str(root), "--out", str(out),
            "--config", "tiny", "--device", "cpu", "--threads", "1", *extra]


def _metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


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
    assert load_checkpoint(out / "best.pt")["train_state"] is None
    assert load_checkpoint(out / "lowres.pt")["stage"] == "lowres"


def test_resume_after_sigkill_is_exact(shapes_root, tmp_path):
    common = ("--stage", "lowres", "--max-iters", "24", "--checkpoint-every", "4",
              "--batch-size", "4")
    reference = tmp_path / "reference"
    assert train_cli(_args(shapes_root, reference, *common)) == 0

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "refseg_model.cli.train", *_args(shapes_root, killed, *common)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (killed / "metrics.jsonl").is_file() and any(
                    r.get("step", 0) >= 10 for r in _metrics(killed)):
                break
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    at_kill = load_checkpoint(killed / "last.pt")["train_state"]["step"]
    assert 8 <= at_kill < 24

    assert train_cli(_args(shapes_root, killed, *common, "--resume")) == 0
    resumed, ref = load_checkpoint(killed / "last.pt"), load_checkpoint(reference / "last.pt")
    assert resumed["train_state"]["step"] == ref["train_state"]["step"] == 24
    for key, value in ref["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, atol=1e-6, rtol=1e-5)
    steps = [r["step"] for r in _metrics(killed) if "loss" in r]
    assert steps == list(range(1, 25))
    ref_losses = [r["loss"] for r in _metrics(reference)]
    got_losses = [r["loss"] for r in _metrics(killed)]
    assert got_losses == pytest.approx(ref_losses, rel=1e-5)


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
    from refseg_model.data import open_source
    from refseg_model.network import build_model
    from refseg_model.text import Vocabulary
    from refseg_model.train import evaluate_hook

    words = ["<pad>", "<go>", "<eos>", "<unk>"] + [f"w{i}" for i in range(16)]
    model = build_model(tiny_config).to(memory_format=torch.channels_last).train()
    before = {name: (p.detach().clone(), p.dtype, p.stride(), p.data_ptr())
              for name, p in model.named_parameters()}
    metrics = evaluate_hook(model, tiny_config, Vocabulary.from_list(words), "lowres",
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
