"""Tests of the paper's metrics against hand-computed values."""

import json

import numpy as np
import pytest

from refseg_model.metrics import (
    KEYS,
    SegmentationMetrics,
    format_table_row,
    intersection_union,
    mask_iou,
    table_header,
)


def _mask(shape, *boxes):
    m = np.zeros(shape, bool)
    for top, bottom, left, right in boxes:
        m[top:bottom, left:right] = True
    return m


def test_intersection_union_by_hand():
    gt = _mask((10, 10), (0, 4, 0, 5))  # 20 pixels
    pred = _mask((10, 10), (2, 6, 0, 5))  # 20 pixels, 10 shared
    assert intersection_union(pred, gt) == (10, 30)
    assert intersection_union(gt, gt) == (20, 20)
    assert intersection_union(np.zeros((3, 3)), np.zeros((3, 3))) == (0, 0)
    with pytest.raises(ValueError, match="differ in size"):
        intersection_union(np.zeros((3, 3)), np.zeros((3, 4)))


def test_accumulator_matches_hand_computation():
    m = SegmentationMetrics()
    shape = (10, 10)
    gt = _mask(shape, (0, 10, 0, 5))  # 50 px
    # sample IoUs: 50/50=1.0, 30/50=0.6, 35/50=0.7 (pred 35 inside), 0/60=0, 40/50=0.8
    assert m.add(gt, gt) == 1.0
    assert m.add(_mask(shape, (0, 6, 0, 5)), gt) == pytest.approx(0.6)
    assert m.add(_mask(shape, (0, 7, 0, 5)), gt) == pytest.approx(0.7)
    assert m.add(_mask(shape, (0, 10, 5, 6)), gt) == 0.0
    assert m.add(_mask(shape, (0, 8, 0, 5)), gt) == pytest.approx(0.8)
    d = m.to_dict()
    assert list(d) == list(KEYS)
    assert d["num_samples"] == 5
    assert d["overall_iou"] == pytest.approx((50 + 30 + 35 + 0 + 40) / (50 + 50 + 50 + 60 + 50))
    assert d["mean_iou"] == pytest.approx((1 + 0.6 + 0.7 + 0 + 0.8) / 5)
    # prec uses >= as the released test script: 0.6 counts at 0.6, 0.7 at 0.7, 0.8 at 0.8
    assert d["prec@0.5"] == pytest.approx(4 / 5)
    assert d["prec@0.6"] == pytest.approx(4 / 5)
    assert d["prec@0.7"] == pytest.approx(3 / 5)
    assert d["prec@0.8"] == pytest.approx(2 / 5)
    assert d["prec@0.9"] == pytest.approx(1 / 5)
    json.dumps(d)  # JSON-able


def test_empty_and_both_empty_cases():
    assert SegmentationMetrics().to_dict()["num_samples"] == 0
    m = SegmentationMetrics()
    m.add(np.zeros((4, 4)), np.zeros((4, 4)))
    assert m.to_dict()["overall_iou"] == 1.0 and m.to_dict()["prec@0.9"] == 1.0
    with pytest.raises(ValueError, match="I <= U"):
        m.add_counts(5, 3)


def test_table_row_in_percent():
    m = SegmentationMetrics()
    m.add_counts(3, 4)   # 0.75
    m.add_counts(1, 4)   # 0.25
    row = m.table_row("whole image")
    assert row.startswith("whole image")
    cells = row.split()
    assert cells[-8:] == ["50.00%", "50.00%", "50.00%", "0.00%", "0.00%", "50.00%", "50.00%",
                          "2"]
    assert len(table_header()) == len(row)
    assert format_table_row("x", m.to_dict()) == m.table_row("x")


def test_mask_iou_and_the_empty_union_rule():
    a = np.zeros((4, 4), bool)
    assert mask_iou(a, a) == 1.0  # nothing there, nothing predicted
    b = a.copy()
    b[0, :2] = True
    assert mask_iou(a, b) == 0.0
    a[0, 0] = True
    assert mask_iou(a, b) == 0.5
    with pytest.raises(ValueError, match="differ in size"):
        mask_iou(a, np.zeros((3, 4), bool))
