"""refseg_model: Segmentation from Natural Language Expressions (Hu, Rohrbach, Darrell, 2016).

A ROS-free PyTorch package: network, data, training, evaluation and inference. Importing it is
cheap; torch is loaded when a heavy name (``Segmenter``, ``Prediction``, ``build_model``...) is
first used::

    from refseg_model import Segmenter
    seg = Segmenter.from_checkpoint(refseg_model.default_checkpoint_path())
    pred = seg.predict(rgb, "the red cup on the left")
"""

from __future__ import annotations

import importlib
from pathlib import Path

__version__ = "0.1.0"

_LAZY = {
    "Segmenter": "refseg_model.inference",
    "Prediction": "refseg_model.inference",
    "build_model": "refseg_model.network",
    "ModelConfig": "refseg_model.config",
    "TrainConfig": "refseg_model.config",
    "load_config": "refseg_model.config",
    "CheckpointError": "refseg_model.checkpoint",
    "load_checkpoint": "refseg_model.checkpoint",
}

__all__ = ["__version__", "default_checkpoint_path", *_LAZY]


def default_checkpoint_path() -> Path:
    """Return the path of the shipped default checkpoint (``weights/tabletop.pt``).

    The path is returned even when the file is missing; ``Segmenter.from_checkpoint`` then
    says so.
    """
    return Path(__file__).resolve().parent / "weights" / "tabletop.pt"


def __getattr__(name: str):
    """Import heavy names on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'refseg_model' has no attribute {name!r}")
