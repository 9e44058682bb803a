"""Tests of the ReferIt reader on the tiny fixture in the real released-code layout."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from refseg_model.data import DataError, RefSegDataset, open_source
from refseg_model.data.referit import ReferItSource, load_referit_mask
from refseg_model.text import Vocabulary

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "referit"


@pytest.fixture
def referit_copy(tmp_path):
    """Return a writable copy of the fixture."""
    root = tmp_path / "referit"
    shutil.copytree(FIXTURE, root)
    return root


def test_samples_are_region_expression_pairs_with_real_ids():
    source = open_source("referit", FIXTURE, "test")
    assert isinstance(source, ReferItSource)
    ids = [s.sample_id for s in source.samples]
    assert len(ids) == 10 == len(set(ids))
    by_id = {s.sample_id: s for s in source.samples}
    assert by_id["38100_2_0"].expression == "Sky above the bridge"
    assert by_id["38677_2_1"].expression == "sky at the top"
    assert (by_id["38677_2_1"].image_id, by_id["38677_2_1"].region_id) == ("38677", "2")
    assert by_id["38100_1_0"].image_path == FIXTURE / "images" / "38100.jpg"
    assert sorted(s.sample_id for s in source.samples if s.image_id == "38100") == [
        "38100_1_0", "38100_2_0", "38100_3_0", "38100_4_0"]
    assert source.summarize_problems() is None
    assert "Sky above the bridge" in source.expressions()


def test_masks_are_segimg_t_zero_and_match_images():
    source = ReferItSource(FIXTURE, "test", on_error="raise")
    sample = next(s for s in source.samples if s.sample_id == "6882_1_0")
    image, mask = source.load_checked(sample)
    assert image.shape == (64, 48, 3) and image.dtype == np.uint8
    assert mask.dtype == bool and mask.shape == (64, 48)
    raw = scipy.io.loadmat(FIXTURE / "mask" / "6882_1.mat")["segimg_t"]
    np.testing.assert_array_equal(mask, raw == 0)
    assert mask.sum() == 30 * 12  # the "dude" rectangle drawn by make_fixture.py
    assert image[30, 24, 0] > 150 and image[30, 24, 2] < 100  # the drawn red figure, as RGB


def test_split_list_filters_regions(referit_copy):
    (referit_copy / "referit_test_imlist.txt").write_text("6882\n38677\n")
    source = ReferItSource(referit_copy, "test")
    assert {s.image_id for s in source.samples} == {"6882", "38677"}
    assert len(source) == 6


def test_missing_files_raise_or_skip_with_names(referit_copy, caplog):
    (referit_copy / "mask" / "38100_3.mat").unlink()
    (referit_copy / "images" / "6882.jpg").unlink()
    queries = json.loads((referit_copy / "referit_query_test.json").read_text())
    queries["38677_2"].append("  ")
    (referit_copy / "referit_query_test.json").write_text(json.dumps(queries))
    with pytest.raises(DataError, match="38100_3.mat|6882.jpg"):
        ReferItSource(referit_copy, "test", on_error="raise")
    with caplog.at_level(logging.WARNING, logger="refseg_model.data"):
        source = ReferItSource(referit_copy, "test", on_error="skip")
    assert len(source) == 10 - 1 - 2
    text = caplog.text
    assert "38100_3.mat" in text and "6882.jpg" in text and "38677_2 is empty" in text
    assert text.count("6882.jpg") == 1  # one warning for the image of two regions
    assert source.problems == {"missing masks": 1, "missing images": 2, "empty expressions": 1}
    assert "skipped 4 samples" in source.summarize_problems()


def test_missing_split_files_always_raise(tmp_path):
    with pytest.raises(DataError, match="referit_query_val.json"):
        ReferItSource(tmp_path, "val")
    with pytest.raises(ValueError, match="split"):
        ReferItSource(FIXTURE, "dev")


def test_corrupt_mask_and_image_are_named(referit_copy):
    (referit_copy / "mask" / "38677_1.mat").write_bytes(b"not a mat file")
    scipy.io.savemat(referit_copy / "mask" / "38677_3.mat", {"other": np.zeros((2, 2))})
    (referit_copy / "images" / "6882.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match="38677_1.mat"):
        load_referit_mask(referit_copy / "mask" / "38677_1.mat")
    with pytest.raises(DataError, match="no variable 'segimg_t'"):
        load_referit_mask(referit_copy / "mask" / "38677_3.mat")
    source = ReferItSource(referit_copy, "test")
    bad = next(s for s in source.samples if s.image_id == "6882")
    assert source.load(bad) is None
    assert source.problems["unloadable samples"] == 1
    with pytest.raises(DataError, match="6882.jpg"):
        ReferItSource(referit_copy, "test", on_error="raise").load_checked(bad)


def test_dataset_items_full_and_coarse():
    source = ReferItSource(FIXTURE, "test")
    vocab = Vocabulary.build(source.expressions())
    full = RefSegDataset(source, vocab, 64, label="full", stride=32)
    index = next(i for i, s in enumerate(source.samples) if s.sample_id == "38100_3_0")
    item = full[index]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["tokens"].shape == (20,) and item["tokens"].dtype == torch.long
    assert [vocab.token(int(t)) for t in item["tokens"] if t] == [
        "you", "got", "the", "hard", "ones", "-", "water"]
    assert item["mask"].shape == (64, 64) and item["valid"].shape == (64, 64)
    # 64x48 landscape image centred with 8 padding rows above and below
    assert item["valid"][:8].sum() == 0 and item["valid"][8:56].all()
    assert item["mask"][8 + 42:56].all() and item["mask"][: 8 + 42].sum() == 0
    assert item["sample_id"] == "38100_3_0" and item["index"] == index
    coarse = RefSegDataset(source, vocab, 64, label="coarse", stride=32)[index]["mask"]
    np.testing.assert_array_equal(coarse.numpy(), [[0, 0], [1, 1]])


def test_dataset_skips_unloadable_sample_to_next(referit_copy, caplog):
    source = ReferItSource(referit_copy, "test")
    first = source.samples[0]
    Path(first.mask_ref).write_bytes(b"garbage")
    ds = RefSegDataset(source, Vocabulary.build(source.expressions()), 32, stride=32)
    with caplog.at_level(logging.WARNING, logger="refseg_model.data"):
        item = ds[0]
    assert item["sample_id"] == source.samples[1].sample_id and item["index"] == 1
    assert first.sample_id in caplog.text and ds.skipped == 1
    strict = RefSegDataset(source, ds.vocab, 32, stride=32, on_error="raise")
    with pytest.raises(DataError, match=Path(first.mask_ref).name):
        strict[0]
