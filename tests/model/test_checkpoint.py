"""Tests of checkpoint files: round trip, safe loading, clear errors."""

import argparse
import os

import pytest
import torch

from refseg_model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    make_payload,
    model_from_checkpoint,
    save_checkpoint,
    save_inference_checkpoint,
)
from refseg_model.network import build_model

VOCAB = ["<pad>", "<go>", "<eos>", "<unk>"] + [f"w{i}" for i in range(16)]


@pytest.fixture()
def saved(tmp_path, tiny_config):
    model = build_model(tiny_config)
    state = {"step": 3, "optimizer": torch.optim.SGD(model.parameters(), 0.1,
                                                     momentum=0.9).state_dict()}
    path = save_checkpoint(make_payload(model, tiny_config, VOCAB, "highres", state),
                           tmp_path / "last.pt")
    return model, path


def test_round_trip_with_weights_only(saved):
    model, path = saved
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    assert raw["format"] == "refseg-checkpoint" and raw["version"] == 1
    payload = load_checkpoint(path)
    rebuilt = model_from_checkpoint(payload)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value)
    assert payload["train_state"]["step"] == 3 and payload["vocabulary"] == VOCAB
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_inference_checkpoint_is_smaller_and_loads(saved, tmp_path):
    _, path = saved
    slim = save_inference_checkpoint(load_checkpoint(path), tmp_path / "slim.pt", half=True)
    payload = load_checkpoint(slim)
    assert payload["train_state"] is None
    assert slim.stat().st_size < path.stat().st_size
    model_from_checkpoint(payload)


def test_missing_truncated_corrupt_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(corrupt)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)


def test_foreign_and_pickled_payloads(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a refseg checkpoint"):
        load_checkpoint(foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "refseg-checkpoint", "args": argparse.Namespace(lr=0.1)}, pickled)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(pickled)


def test_wrong_architecture(saved, tmp_path):
    _, path = saved
    payload = load_checkpoint(path)
    payload["model_config"]["feat_dim"] = 32
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(payload, path)
    payload = load_checkpoint(path)
    payload["vocabulary"] = VOCAB[:-1]
    with pytest.raises(CheckpointError, match="vocab_size"):
        model_from_checkpoint(payload, path)
