"""Writer round trip through :class:`SyntheticSource`: layout, masks, depth, camera, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refseg_model.data import open_source
from refseg_model.data.base import DataError
from refseg_model.data.synthetic import SyntheticSource
from refseg_model.synth import generate_scene
from refseg_model.synth.writer import write_dataset

SEED, N, W, H = 11, 4, 160, 120


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    meta = write_dataset(root, N, seed=SEED, width=W, height=H, val_frac=0.25, test_frac=0.25,
                         progress=False)
    return root, meta


def test_layout_and_meta(dataset):
    root, meta = dataset
    assert json.loads((root / "meta.json").read_text()) == meta
    assert meta["num_images"] == N and meta["width"] == W and meta["height"] == H
    ids = []
    for split in ("train", "val", "test"):
        lines = (root / f"synthetic_{split}_imlist.txt").read_text().split()
        assert len(lines) == meta["splits"][split]["images"]
        ids += lines
    assert sorted(ids) == [f"{i:06d}" for i in range(N)]
    assert meta["splits"]["val"]["images"] == 1 and meta["splits"]["test"]["images"] == 1
    for image_id in ids:
        for sub, ext in (("images", "png"), ("depth", "png"), ("camera", "json"),
                         ("scenes", "json")):
            assert (root / sub / f"{image_id}.{ext}").is_file()
    assert not list(root.rglob("*.tmp"))


def test_round_trip_matches_generator(dataset):
    root, meta = dataset
    total = 0
    for split in ("train", "val", "test"):
        source = SyntheticSource(root, split, on_error="raise")
        queries = json.loads((root / f"synthetic_query_{split}.json").read_text())
        assert len(source) == sum(len(v) for v in queries.values())
        assert len(source) == meta["splits"][split]["expressions"]
        total += len(source)
        for sample in source.samples:
            image_id, region_id, k = sample.sample_id.split("_")
            assert (image_id, region_id) == (sample.image_id, sample.region_id)
            assert queries[f"{image_id}_{region_id}"][int(k)] == sample.expression
        sample = source.samples[0]
        scene = generate_scene((SEED, int(sample.image_id)), W, H)
        image, mask = source.load_checked(sample)
        assert np.array_equal(image, scene.rgb)
        assert np.array_equal(mask, scene.region(sample.region_id).mask)
        depth = source.load_depth(sample)
        assert depth.dtype == np.float32 and np.abs(depth - scene.depth_m).max() <= 0.0005 + 1e-6
        camera = source.load_camera(sample)
        assert (camera["width"], camera["height"]) == (W, H)
        assert np.allclose(camera["K"], scene.K, atol=1e-5)
    trainval = open_source("synthetic", root, "trainval")
    assert len(trainval) == total - len(SyntheticSource(root, "test"))


def test_same_seed_same_bytes_with_workers(dataset, tmp_path):
    root, _ = dataset
    write_dataset(tmp_path, N, seed=SEED, width=W, height=H, val_frac=0.25, test_frac=0.25,
                  workers=2, progress=False)
    mine = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert mine == theirs
    for rel in mine:
        assert (root / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_errors_name_the_file(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(DataError, match="synthetic_query_train.json"):
        SyntheticSource(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        SyntheticSource(root, "nope")
    # a copy with one corrupt mask and one missing mask
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    source = SyntheticSource(copy, "train", on_error="raise")
    bad = source.samples[0]
    bad.mask_ref.write_bytes(b"not a png")
    with pytest.raises(DataError, match=str(bad.mask_ref.name)):
        source.load_mask(bad)
    missing = next(s for s in source.samples if s.mask_ref != bad.mask_ref)
    missing.mask_ref.unlink()
    with pytest.raises(DataError, match="mask file not found"):
        SyntheticSource(copy, "train", on_error="raise")
    skipping = SyntheticSource(copy, "train", on_error="skip")
    assert len(skipping) < len(source)
    assert "missing masks" in skipping.summarize_problems()
    (copy / "depth" / f"{bad.image_id}.png").write_bytes(b"")
    with pytest.raises(DataError, match="depth"):
        skipping.load_depth(bad)
