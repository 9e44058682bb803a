"""Fixtures for the model tests: a tiny on-the-fly dataset in the ReferIt layout.

Each image shows a red square and a blue disc on a noisy grey background; region 1 is the red
square ("the red square", "red thing"), region 2 the blue disc ("the blue circle", "blue thing").
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

EXPRESSIONS = {1: ["the red square", "red thing"], 2: ["the blue circle", "blue thing"]}


def write_shapes_dataset(root: Path, num_images: int = 16, size=(48, 64), seed: int = 0,
                         splits=("train", "val")) -> Path:
    """Write ``num_images`` images per split in the ReferIt layout under ``root``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "mask").mkdir(exist_ok=True)
    h, w = size
    for split in splits:
        queries, ids = {}, []
        for i in range(num_images):
            image_id = f"{split}{i}"
            image = rng.integers(90, 140, size=(h, w, 3), dtype=np.uint8)
            red = np.zeros((h, w), np.uint8)
            blue = np.zeros((h, w), np.uint8)
            while True:
                x0, y0 = rng.integers(2, w - 18), rng.integers(2, h - 18)
                cx, cy = rng.integers(9, w - 9), rng.integers(9, h - 9)
                if abs(int(cx) - int(x0) - 7) > 16 or abs(int(cy) - int(y0) - 7) > 16:
                    break
            red[y0:y0 + 14, x0:x0 + 14] = 1
            cv2.circle(blue, (int(cx), int(cy)), 7, 1, -1)
            image[red > 0] = (220, 30, 30)
            image[blue > 0] = (30, 30, 220)
            cv2.imwrite(str(root / "images" / f"{image_id}.jpg"),
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            for region, mask in ((1, red), (2, blue)):
                # ReferIt convention: foreground where segimg_t == 0
                scipy.io.savemat(str(root / "mask" / f"{image_id}_{region}.mat"),
                                 {"segimg_t": (1 - mask).astype(np.uint8)})
                queries[f"{image_id}_{region}"] = EXPRESSIONS[region]
            ids.append(image_id)
        (root / f"referit_query_{split}.json").write_text(json.dumps(queries))
        (root / f"referit_{split}_imlist.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory) -> Path:
    """Return a tiny ReferIt-layout dataset (16 train + 16 val images, 64 samples per split)."""
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"))


@pytest.fixture()
def tiny_config():
    """Return a tiny ModelConfig (64x64 input, stride 8) for a 20-word vocabulary."""
    import dataclasses

    from refseg_model.config import load_config

    return dataclasses.replace(load_config("tiny").model, vocab_size=20)
