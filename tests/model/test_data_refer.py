"""Tests of the ``refer`` toolkit reader on a tiny dataset written here (polygon and RLE masks)."""

import json
import os
import pickle

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from refseg_model.data import DataError, open_source
from refseg_model.data.refer import ReferSource, decode_segmentation, safe_load_pickle

H, W = 24, 32


def _rle_uncompressed(mask):
    """Column-major run lengths starting with a background run, as COCO stores iscrowd masks."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": [mask.shape[0], mask.shape[1]], "counts": counts}


@pytest.fixture
def refer_root(tmp_path):
    """Write DIR/refcoco/refs(unc).p, DIR/refcoco/instances.json and two images."""
    image_dir = tmp_path / "images" / "mscoco" / "images" / "train2014"
    image_dir.mkdir(parents=True)
    for name in ("COCO_train2014_000000000001.jpg", "COCO_train2014_000000000002.jpg"):
        cv2.imwrite(str(image_dir / name), np.full((H, W, 3), 128, np.uint8))
    rle_mask = np.zeros((H, W), np.uint8)
    rle_mask[10:20, 4:9] = 1
    compressed = mask_utils.encode(np.asfortranarray(rle_mask))
    compressed["counts"] = compressed["counts"].decode("ascii")
    crowd = np.zeros((H, W), bool)
    crowd[0:3, 0:W] = True
    instances = {
        "images": [
            {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": H, "width": W},
            {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": H, "width": W},
        ],
        "annotations": [
            # rectangle x 2..12, y 4..10 as a polygon
            {"id": 11, "image_id": 1, "segmentation": [[2, 4, 12, 4, 12, 10, 2, 10]]},
            {"id": 12, "image_id": 1, "segmentation": compressed},
            {"id": 21, "image_id": 2, "segmentation": _rle_uncompressed(crowd), "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "cup"}],
    }
    refs = [
        {"ref_id": 100, "ann_id": 11, "image_id": 1, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "left cup", "raw": "Left cup.", "tokens": ["left", "cup"]},
                       {"sent": "red cup", "raw": "red cup", "tokens": ["red", "cup"]}]},
        {"ref_id": 101, "ann_id": 12, "image_id": 1, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "bottle", "raw": "the bottle", "tokens": ["bottle"]}]},
        {"ref_id": 102, "ann_id": 21, "image_id": 2, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "top strip", "tokens": ["top", "strip"]}]},
        {"ref_id": 103, "ann_id": 21, "image_id": 2, "split": "train", "category_id": 1,
         "sentences": [{"sent": "train only", "raw": "train only", "tokens": []}]},
    ]
    (tmp_path / "refcoco").mkdir()
    (tmp_path / "refcoco" / "instances.json").write_text(json.dumps(instances))
    with open(tmp_path / "refcoco" / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return tmp_path


def test_samples_and_masks(refer_root):
    source = open_source("refer", refer_root, "testA", dataset="refcoco")
    assert isinstance(source, ReferSource)
    assert [s.sample_id for s in source.samples] == ["1_100_0", "1_100_1", "1_101_0", "2_102_0"]
    assert [s.expression for s in source.samples] == [
        "Left cup.", "red cup", "the bottle", "top strip"]
    by_id = {s.sample_id: s for s in source.samples}
    image, mask = source.load_checked(by_id["1_100_0"])
    assert image.shape == (H, W, 3) and mask.shape == (H, W) and mask.dtype == bool
    # pycocotools rasterises the polygon x 2..12, y 4..10 to 10 x 6 pixels
    ys, xs = np.nonzero(mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (4, 9, 2, 11)
    assert mask.sum() == 60
    expected = np.zeros((H, W), bool)
    expected[10:20, 4:9] = True
    np.testing.assert_array_equal(source.load_mask(by_id["1_101_0"]), expected)
    crowd = source.load_mask(by_id["2_102_0"])
    assert crowd[0:3].all() and crowd.sum() == 3 * W
    assert len(open_source("refer", refer_root, "train", dataset="refcoco")) == 1


def test_image_dir_override_and_missing_images(refer_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    os.rename(refer_root / "images" / "mscoco" / "images" / "train2014", elsewhere)
    with pytest.raises(DataError, match="COCO_train2014_00000000000"):
        ReferSource(refer_root, "testA", on_error="raise", dataset="refcoco")
    skipped = ReferSource(refer_root, "testA", dataset="refcoco")
    assert len(skipped) == 0 and skipped.problems["missing images"] == 4
    moved = ReferSource(refer_root, "testA", dataset="refcoco", image_dir=elsewhere)
    assert len(moved) == 4


def test_bad_split_and_missing_files_are_named(refer_root):
    with pytest.raises(DataError, match=r"split 'val'.*testA"):
        ReferSource(refer_root, "val", dataset="refcoco")
    with pytest.raises(DataError, match=r"refs\(google\).p.*refs\(unc\).p"):
        ReferSource(refer_root, "testA", dataset="refcoco", split_by="google")
    (refer_root / "refcoco" / "instances.json").unlink()
    with pytest.raises(DataError, match="instances.json"):
        ReferSource(refer_root, "testA", dataset="refcoco")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_refs_pickle_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "refs(unc).p"
    evil.write_bytes(pickle.dumps([{"ref_id": 1, "x": _Exploit()}], protocol=2))
    with pytest.raises(DataError, match=r"refs\(unc\).p.*posix.system|refs\(unc\).p.*os.system"):
        safe_load_pickle(evil)
    assert not (tmp_path / "pwned").exists()
    truncated = tmp_path / "short.p"
    truncated.write_bytes(pickle.dumps([{"a": 1}] * 10)[:20])
    with pytest.raises(DataError, match="short.p"):
        safe_load_pickle(truncated)
    plain = tmp_path / "plain.p"
    plain.write_bytes(pickle.dumps([{"a": (1, 2.5), "b": {"x"}, "c": [True, None]}], protocol=2))
    assert safe_load_pickle(plain) == [{"a": (1, 2.5), "b": {"x"}, "c": [True, None]}]


def test_decode_segmentation_formats():
    poly = decode_segmentation([[0, 0, 4, 0, 4, 4, 0, 4]], 8, 8)
    assert poly[:4, :4].all() and poly.sum() == 16
    assert decode_segmentation([], 5, 6).shape == (5, 6)
    with pytest.raises(ValueError, match="unknown segmentation"):
        decode_segmentation(42, 5, 5)
