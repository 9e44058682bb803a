"""Checkpoint files: plain tensors + JSON-able dicts, written atomically, loaded safely.

A checkpoint is a dict::

    {"format": "refseg-checkpoint", "version": 1,
     "model_config": {...},            # ModelConfig.to_dict()
     "vocabulary": [str, ...],         # Vocabulary.to_list()
     "preprocessing": {...},           # input width and height, RGB mean, letterbox, max_len
     "state_dict": {name: tensor},
     "stage": "det" | "lowres" | "highres",
     "train_state": {...} | None}      # optimizer state, step, RNG states (training only)

Only JSON-able values and tensors are stored, so ``torch.load(path, weights_only=True)`` reads
it; this module never loads with ``weights_only=False``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import CHECKPOINT_STAGES, ConfigError, ModelConfig
from .fileio import atomic_open
from .network import build_model
from .preprocess import RGB_MEAN

FORMAT = "refseg-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("model_config", "vocabulary", "preprocessing", "state_dict", "stage")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, damaged, foreign or does not fit the network."""


def preprocessing_dict(cfg: ModelConfig) -> dict[str, Any]:
    """Return the preprocessing a checkpoint's model expects (kept with the weights)."""
    return {"input_width": cfg.input_width, "input_height": cfg.input_height, "letterbox": True,
            "rgb_mean": list(RGB_MEAN),
            "max_len": cfg.max_len, "stride": cfg.stride}


def make_payload(model: torch.nn.Module, cfg: ModelConfig, vocabulary: list[str], stage: str,
                 train_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble a checkpoint dict for ``model`` (weights copied to the CPU).

    The stored ``model_config`` is ``cfg`` with ``vocab_size`` the vocabulary's length.
    """
    if stage not in CHECKPOINT_STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {CHECKPOINT_STAGES}")
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    model_config = {**cfg.to_dict(), "vocab_size": len(vocabulary)}
    return {"format": FORMAT, "version": VERSION, "model_config": model_config,
            "vocabulary": list(vocabulary), "preprocessing": preprocessing_dict(cfg),
            "state_dict": state, "stage": stage, "train_state": train_state}


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, fsync=True) as handle:
        torch.save(payload, handle)
    return path


def save_inference_checkpoint(payload: dict[str, Any], path: str | Path,
                              half: bool = False) -> Path:
    """Write ``payload`` without its training state (optionally float16 weights)."""
    slim = dict(payload)
    slim["train_state"] = None
    if half:
        slim["state_dict"] = {k: v.half() if v.is_floating_point() else v
                              for k, v in payload["state_dict"].items()}
    return save_checkpoint(slim, path)


def calibrated_threshold(payload: dict[str, Any]) -> float | None:
    """Return the probability threshold stored in the checkpoint (``None`` if there is none).

    ``refseg-calibrate`` (``refseg_model.calibrate``) chooses it on a validation split and
    writes it under the key ``threshold``.
    """
    value = payload.get("threshold")
    if value is None:
        return None
    value = float(value)
    if not 0.0 < value < 1.0:
        raise CheckpointError(f"checkpoint threshold must be a probability in (0, 1), got "
                              f"{value}")
    return value


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; raise ``CheckpointError`` saying what is wrong."""
    payload = read_payload(path, map_location)
    check_payload(payload, path)
    return payload


def read_payload(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a ``torch.save`` file with ``weights_only=True``; never runs code from the file.

    Raises ``CheckpointError`` for a missing, empty, truncated, corrupt or pickled file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        is_zip = zipfile.is_zipfile(path)
    except (zipfile.BadZipFile, OSError):  # a damaged end-of-archive record can raise
        is_zip = False
    if not is_zip:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: not a PyTorch "
                              "checkpoint archive (torch.save zip format)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint {path} holds pickled Python objects that a safe load refuses (it was "
            "not written by refseg_model.checkpoint, or is not trusted); refusing to load it. "
            f"Detail: {str(err).splitlines()[0]}") from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError,
            KeyError, IndexError, TypeError) as err:  # a damaged pickle raises any of these
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read "
                              f"({type(err).__name__}: {str(err).splitlines()[0]})") from err
    return payload


def check_header(payload: Any, path: str | Path, fmt: str, version: int, what: str,
                 hint: str) -> None:
    """Raise ``CheckpointError`` unless ``payload`` is a dict of format ``fmt``, ``version``.

    ``what`` names the kind of file in the message ("a refseg checkpoint"); ``hint`` says how to
    make one.
    """
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path} is not {what} (no 'format': {fmt!r}); {hint}")
    if payload.get("version") != version:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')!r}; "
                              f"this refseg_model reads version {version}")


def check_payload(payload: Any, path: str | Path = "<checkpoint>") -> None:
    """Raise ``CheckpointError`` unless ``payload`` is a refseg checkpoint of this version."""
    check_header(payload, path, FORMAT, VERSION, "a refseg checkpoint",
                 "train one with refseg-train")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks the key(s) {missing}")
    if payload["stage"] not in CHECKPOINT_STAGES:
        raise CheckpointError(f"{path} has unknown stage {payload['stage']!r}")
    if not isinstance(payload["state_dict"], dict) or not all(
            isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise CheckpointError(f"{path}: 'state_dict' must map names to tensors")
    vocabulary = payload["vocabulary"]
    if not isinstance(vocabulary, list) or not all(isinstance(w, str) for w in vocabulary):
        raise CheckpointError(f"{path}: 'vocabulary' must be a list of words")


def model_config_of(payload: dict[str, Any], path: str | Path = "<checkpoint>") -> ModelConfig:
    """Return the checkpoint's ``ModelConfig`` (raising ``CheckpointError`` if invalid)."""
    try:
        return ModelConfig.from_dict(dict(payload["model_config"]))
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"{path}: invalid model_config: {err}") from err


def model_from_checkpoint(payload: dict[str, Any], path: str | Path = "<checkpoint>"):
    """Build the network described by ``payload`` and load its weights (strictly).

    The backbone is never downloaded here: the checkpoint's weights replace it anyway.
    """
    cfg = model_config_of(payload, path)
    cfg.pretrained, cfg.backbone_weights = False, None
    if cfg.vocab_size != len(payload["vocabulary"]):
        raise CheckpointError(f"{path}: model_config.vocab_size {cfg.vocab_size} differs from "
                              f"the stored vocabulary's {len(payload['vocabulary'])} words")
    try:
        model = build_model(cfg, vocabulary=payload["vocabulary"])
    except ConfigError as err:
        raise CheckpointError(f"{path}: its model_config does not describe a buildable "
                              f"network: {err}") from err
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the {cfg.backbone} network "
                              f"described by its model_config: {err}") from err
    return model
