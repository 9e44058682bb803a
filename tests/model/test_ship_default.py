"""tools/ship_default.py: the shipped checkpoint, optionally at another input size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refseg_model import Segmenter
from refseg_model.checkpoint import load_checkpoint
from tests.harness import make_checkpoint

REPO = Path(__file__).resolve().parents[2]


def ship(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "ship_default.py"), *args],
                          capture_output=True, text=True)


def test_ship_keeps_the_weights_and_sets_a_new_input(tmp_path):
    src = make_checkpoint(tmp_path / "tiny.pt", seed=3)
    same, bigger = tmp_path / "same.pt", tmp_path / "bigger.pt"
    assert ship(str(src), str(same)).returncode == 0
    done = ship(str(src), str(bigger), "--input", "96x64")
    assert done.returncode == 0, done.stderr
    assert "input 96x64" in done.stdout
    a, b = load_checkpoint(same), load_checkpoint(bigger)
    assert b["train_state"] is None and "threshold" not in b
    assert (b["model_config"]["input_width"], b["model_config"]["input_height"]) == (96, 64)
    assert b["preprocessing"]["input_width"] == 96 and b["preprocessing"]["input_height"] == 64
    for key, value in a["state_dict"].items():
        assert np.array_equal(value.numpy(), b["state_dict"][key].numpy())
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    seg = Segmenter.from_checkpoint(bigger, device="cpu")
    assert seg.predict(rgb, "the red cup").mask.shape == (48, 64)   # runs at the new size


@pytest.mark.parametrize("bad", ["96x65", "0x64", "big"])
def test_ship_refuses_an_input_off_the_stride(tmp_path, bad):
    src = make_checkpoint(tmp_path / "tiny.pt")
    done = ship(str(src), str(tmp_path / "out.pt"), "--input", bad)
    assert done.returncode != 0 and not (tmp_path / "out.pt").exists()
    assert "input" in done.stderr


def test_ship_adds_the_landmark_grounding_and_answers_as_before(tmp_path):
    src = make_checkpoint(tmp_path / "relational.pt", seed=4, context="relational")
    out = tmp_path / "landmark.pt"
    done = ship(str(src), str(out), "--context", "landmark")
    assert done.returncode == 0, done.stderr
    payload = load_checkpoint(out)
    assert payload["model_config"]["context"] == "landmark"
    assert "landmark.inject.weight" in payload["state_dict"]
    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    before = Segmenter.from_checkpoint(src, device="cpu", precision="fp32")
    after = Segmenter.from_checkpoint(out, device="cpu", precision="fp32")
    for text in ("the blue bottle next to the box", "the red cup"):
        np.testing.assert_array_equal(after.predict(rgb, text).probs,
                                      before.predict(rgb, text).probs)


def test_ship_refuses_the_landmark_grounding_without_a_context_block(tmp_path):
    src = make_checkpoint(tmp_path / "plain.pt")
    done = ship(str(src), str(tmp_path / "out.pt"), "--context", "landmark")
    assert done.returncode != 0 and not (tmp_path / "out.pt").exists()
    assert "context block" in done.stderr


def test_ship_sets_and_removes_the_exposure_range(tmp_path):
    src = make_checkpoint(tmp_path / "tiny.pt", seed=5)
    on, off = tmp_path / "on.pt", tmp_path / "off.pt"
    done = ship(str(src), str(on), "--exposure-range", "93,150")
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(on)["model_config"]["exposure_range"] == [93.0, 150.0]
    assert Segmenter.from_checkpoint(on, device="cpu").config.exposure_range == [93.0, 150.0]
    assert ship(str(on), str(off), "--exposure-range", "none").returncode == 0
    assert load_checkpoint(off)["model_config"]["exposure_range"] is None
    for bad in ("150,93", "dark"):
        refused = ship(str(src), str(tmp_path / "bad.pt"), "--exposure-range", bad)
        assert refused.returncode != 0 and "exposure" in refused.stderr
        assert not (tmp_path / "bad.pt").exists()
