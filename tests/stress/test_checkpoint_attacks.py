"""Checkpoints that are truncated, corrupted, foreign or carry a pickled payload are refused.

Loading never executes code from a checkpoint: a payload whose ``__reduce__`` would create a
file is refused and the file never appears, through every entry point that loads checkpoints.
"""

import io
import os
import random
import zipfile
from pathlib import Path

import pytest
import torch

from refseg_model.checkpoint import CheckpointError, load_checkpoint, make_payload, save_checkpoint
from refseg_model.config import load_config
from refseg_model.inference import Segmenter
from refseg_model.network import build_model

VOCAB = ["<pad>", "<go>", "<eos>", "<unk>", "the", "red", "cup"]


class Payload:
    """Unpickling this object would create the file ``marker`` (code execution)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    cfg = load_config("tiny").model
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    return save_checkpoint(make_payload(build_model(cfg, len(VOCAB)), cfg, VOCAB, "highres"),
                           path)


def test_every_truncation_is_refused_clearly(good, tmp_path):
    data = good.read_bytes()
    rng = random.Random(0)
    cuts = sorted({0, 1, 2, 100, len(data) - 1, len(data) - 22,
                   *(rng.randrange(1, len(data)) for _ in range(40))})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"empty|truncated or corrupt") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)


def test_random_byte_corruption_never_escapes_as_another_error(good, tmp_path):
    data = bytearray(good.read_bytes())
    rng = random.Random(1)
    refused = 0
    for trial in range(60):
        damaged = bytearray(data)
        for _ in range(rng.choice([1, 8, 64])):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path = tmp_path / f"damaged{trial}.pt"
        path.write_bytes(bytes(damaged))
        try:
            payload = load_checkpoint(path)
        except CheckpointError as err:
            refused += 1
            assert str(path) in str(err)
        else:  # bytes inside raw tensor storage: still a well-formed checkpoint
            assert payload["format"] == "refseg-checkpoint"
    assert refused > 0


def test_random_files_are_refused(tmp_path):
    for size in (1, 21, 22, 512, 100_000):
        path = tmp_path / f"noise{size}.pt"
        path.write_bytes(os.urandom(size))
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(path)
    path = tmp_path / "zip_of_other.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def _evil_checkpoints(tmp_path, marker):
    """Checkpoints whose unpickling would run ``Path.touch(marker)``, in several shapes."""
    evil = {}
    evil["top_level"] = tmp_path / "evil_top.pt"
    torch.save(Payload(marker), evil["top_level"])
    evil["inside_state_dict"] = tmp_path / "evil_state.pt"
    torch.save({"format": "refseg-checkpoint", "version": 1, "state_dict": {"w": Payload(marker)}},
               evil["inside_state_dict"])
    evil["legacy_format"] = tmp_path / "evil_legacy.pt"
    torch.save({"x": Payload(marker)}, evil["legacy_format"], _use_new_zipfile_serialization=False)
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    evil["renamed_best"] = tmp_path / "best.pt"
    evil["renamed_best"].write_bytes(buffer.getvalue())
    return evil


def test_pickled_payloads_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoints(tmp_path, marker)
    for name, path in evil.items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        text = str(info.value)
        assert str(path) in text, name
        if name != "legacy_format":
            assert "pickled Python objects" in text, name
        with pytest.raises(CheckpointError):
            Segmenter.from_checkpoint(path, device="cpu")
        assert not marker.exists(), f"{name}: the payload ran"


def test_pickled_payload_through_the_command_line_tools(tmp_path, capsys):
    from refseg_model.cli.predict import main as predict_main
    from refseg_model.cli.train import main as train_main

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "refseg-checkpoint", "train_state": Payload(marker)}, run / "last.pt")
    rc = train_main(["--dataset", "synthetic", "--data-root", str(tmp_path / "nodata"),
                     "--out", str(run), "--config", "tiny", "--resume", "--device", "cpu"])
    assert rc == 2 and "pickled Python objects" in capsys.readouterr().err
    image = tmp_path / "image.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with _returns_error():
        rc = predict_main(["--checkpoint", str(run / "last.pt"), "--image", str(image),
                           "--expression", "the cup", "--out", str(tmp_path / "m.png")])
        assert rc != 0
    assert not marker.exists()


class _returns_error:
    """Context that accepts either a non-zero return code or a SystemExit with one."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is SystemExit and value.code not in (0, None)


def test_checkpoint_of_another_model_is_refused(good, tmp_path):
    import torchvision

    foreign_state = tmp_path / "resnet18_state.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), foreign_state)
    with pytest.raises(CheckpointError, match="not a refseg checkpoint"):
        Segmenter.from_checkpoint(foreign_state, device="cpu")
    payload = load_checkpoint(good)
    payload["state_dict"] = torchvision.models.resnet18(weights=None).state_dict()
    mismatched = save_checkpoint(payload, tmp_path / "mismatched.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        Segmenter.from_checkpoint(mismatched, device="cpu")
    payload = load_checkpoint(good)
    payload["model_config"]["backbone"] = "resnet18"
    other = save_checkpoint(payload, tmp_path / "other_backbone.pt")
    with pytest.raises(CheckpointError, match="not describe a buildable network"):
        Segmenter.from_checkpoint(other, device="cpu")  # resnet18 has no stride 8
    payload["model_config"]["stride"] = 32
    other = save_checkpoint(payload, tmp_path / "other_backbone32.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        Segmenter.from_checkpoint(other, device="cpu")
