"""Tests of ``refseg_model.detection``: boxes, the det stage's samples, crops and scorer.

The samples come from the ReferIt-layout fixture (tests/fixtures/referit, split ``test``, with
its box and proposal files).
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from refseg_model.config import DetConfig, load_config
from refseg_model.data import DataError, open_source
from refseg_model.detection import (
    BoxDataset,
    RegionScorer,
    box_features,
    box_iou,
    build_box_samples,
    clip_boxes,
    mask_bbox_xyxy,
    read_proposals,
    released_det_init,
    sampled_boxes,
)
from refseg_model.network import build_model
from refseg_model.text import Vocabulary

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "referit"


# -- boxes -----------------------------------------------------------------------------------
def test_box_iou_and_features_follow_the_released_formulas():
    boxes = np.array([[0, 0, 9, 9], [5, 5, 14, 14], [20, 20, 29, 29]])
    np.testing.assert_allclose(box_iou(boxes, [0, 0, 9, 9]), [1.0, 25 / 175, 0.0])
    feats = box_features(np.array([[0, 10, 49, 29]]), width=100, height=40)
    # x1 = 0*2/100-1, y1 = 10*2/40-1, x2 = 49*2/100-1, y2 = 29*2/40-1, centre, x2-x1, y2-y1
    np.testing.assert_allclose(feats[0], [-1, -0.5, -0.02, 0.45, -0.51, -0.025, 0.98, 0.95],
                               atol=1e-6)
    assert box_features(np.array([[0, 10, 49, 29]]), 100, 40, "xy2").shape == (1, 2)
    assert box_features(np.array([[0, 10, 49, 29]]), 100, 40, "none").shape == (1, 0)


def test_mask_bbox_xyxy_is_xmin_ymin_xmax_ymax_with_inclusive_ends():
    assert mask_bbox_xyxy(np.zeros((4, 4), bool)) is None
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True  # rows 2-4, columns 3-8
    assert mask_bbox_xyxy(mask) == (3, 2, 8, 4)
    one = np.zeros((5, 5), bool)
    one[4, 0] = True
    box = mask_bbox_xyxy(one)
    assert box == (0, 4, 0, 4) and box_iou(np.array([box]), box)[0] == 1.0  # a 1-pixel box


def test_clip_boxes_keeps_boxes_inside_the_image_and_drops_empty_ones():
    boxes = np.array([[-5, -5, 10, 10], [90, 30, 120, 60], [50, 10, 40, 20]])
    clipped = clip_boxes(boxes, width=100, height=50)
    assert clipped.tolist() == [[0, 0, 10, 10], [90, 30, 99, 49]]


def test_read_proposals_reads_rows_and_refuses_other_shapes(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("0 1 10 12\n3 4 20 30\n")
    assert read_proposals(good).tolist() == [[0, 1, 10, 12], [3, 4, 20, 30]]
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 10\n")
    with pytest.raises(DataError, match="expected 4 numbers a row"):
        read_proposals(bad)
    with pytest.raises(DataError, match="cannot read proposal file"):
        read_proposals(tmp_path / "missing.txt")


def test_sampled_boxes_lie_in_the_image_and_jitter_around_the_annotated_box():
    rng = np.random.default_rng(0)
    gt = np.array([[40, 20, 59, 39]])
    boxes = sampled_boxes(100, 60, gt, rng, num_random=30, num_jitter=200)
    assert len(boxes) <= 230 and len(boxes) > 200
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 99).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 59).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    jittered = boxes[-200:]
    assert np.median(box_iou(jittered, gt[0])) > 0.4  # near the box, not anywhere
    assert sampled_boxes(100, 60, gt, rng, 0, 0).shape == (0, 4)


# -- the det stage's samples -----------------------------------------------------------------
def _box_rules_hold(source, index, boxes, labels, det):
    gt = json.loads((FIXTURE / "referit_bbox.json").read_text())
    for k in range(len(labels)):
        sample = source.samples[int(index[k])]
        iou = box_iou(boxes[k:k + 1], gt[f"{sample.image_id}_{sample.region_id}"])[0]
        if labels[k]:
            assert iou >= det.pos_iou
        else:
            assert iou < det.neg_iou


def test_det_samples_from_proposal_files_follow_the_iou_rules():
    source = open_source("referit", FIXTURE, "test")
    det = DetConfig()
    index, boxes, labels, note = build_box_samples(source, det, seed=0)
    assert "referit_edgeboxes_top100" in note and "referit_bbox.json" in note
    _box_rules_hold(source, index, boxes, labels, det)
    positives = int(labels.sum())
    assert positives >= len(source)  # the ground-truth box of every expression, at least
    assert len(labels) - positives == positives  # 1:1 (the fixture has enough negatives)
    gt = json.loads((FIXTURE / "referit_bbox.json").read_text())
    first = source.samples[0]
    rows = boxes[(index == 0) & (labels == 1)].tolist()
    assert gt[f"{first.image_id}_{first.region_id}"] in rows


def test_det_samples_without_proposals_are_sampled_by_the_same_rules():
    source = open_source("referit", FIXTURE, "test")
    det = DetConfig(proposals="no_such_folder", random_boxes=20, jitter_boxes=20)
    index, boxes, labels, note = build_box_samples(source, det, seed=1)
    assert "sampled candidates" in note
    _box_rules_hold(source, index, boxes, labels, det)
    positives = int(labels.sum())
    assert positives > len(source)  # jittered boxes with IoU >= 0.7 besides the ground truth
    assert len(labels) - positives == positives


def test_the_negative_ratio_sets_how_many_negatives_are_kept():
    source = open_source("referit", FIXTURE, "test")
    _, _, labels, _ = build_box_samples(source, DetConfig(neg_ratio=0.5), seed=0)
    positives = int(labels.sum())
    assert len(labels) - positives == int(0.5 * positives)


def test_box_dataset_items_and_region_scorer():
    cfg = load_config("tiny").model
    source = open_source("referit", FIXTURE, "test")
    vocab = Vocabulary.build(source.expressions())
    dataset = BoxDataset(source, vocab, cfg, load_config("tiny").train.det)
    item = dataset[0]
    assert item["image"].shape == (3, 32, 32) and item["spatial"].shape == (8,)
    assert item["mask"].shape == (1, 1) and item["mask"].item() in (0.0, 1.0)
    sample = source.samples[int(dataset.sample_index[0])]
    image = source.load_image(sample)
    np.testing.assert_allclose(item["spatial"].numpy(), box_features(
        dataset.boxes[0], image.shape[1], image.shape[0])[0], rtol=1e-6)
    model = build_model(cfg, len(vocab)).eval()
    batch = torch.utils.data.default_collate([dataset[k] for k in range(3)])
    logits = RegionScorer(model)(batch["image"], batch["tokens"], spatial=batch["spatial"])
    assert logits.shape == (3, 1, 1, 1)
    # the same classifier scores the full-image map: a 1x1 "cell" of the crop
    with pytest.raises(ValueError, match="box features"):
        RegionScorer(model)(batch["image"], batch["tokens"], spatial=None)


def test_centre_cell_of_the_padded_fc6_is_the_fully_connected_layer():
    fc6 = torch.nn.Conv2d(8, 4, kernel_size=7, padding=3)
    pool5 = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(fc6(pool5)[:, :, 3, 3],
                               F.conv2d(pool5, fc6.weight, fc6.bias)[:, :, 0, 0])


def test_released_det_init_draws_the_released_distributions():
    cfg = dataclasses.replace(load_config("tiny").model, cls_dim=64, embed_dim=64, text_dim=64,
                              feat_dim=64, lstm_forget_bias=1.0)
    model = build_model(cfg, 500)
    released_det_init(model, torch.Generator().manual_seed(0))
    classifier, encoder = model.classifier, model.expression_encoder
    assert classifier.mlp1.weight.std().item() == pytest.approx(0.05, rel=0.1)
    assert classifier.mlp2.weight.std().item() == pytest.approx(0.1, rel=0.3)
    assert not classifier.mlp1.bias.any() and not classifier.mlp2.bias.any()
    limit = (6.0 / (500 + 64)) ** 0.5  # glorot_uniform of the [vocab, embed] embedding
    weight = encoder.embedding.weight
    assert weight.abs().max().item() <= limit and weight.abs().max().item() > 0.9 * limit
    hidden = encoder.lstm.hidden_size
    total = encoder.lstm.bias_ih_l0 + encoder.lstm.bias_hh_l0
    assert torch.equal(total[hidden:2 * hidden], torch.ones(hidden))  # the forget bias again
    again = build_model(cfg, 500)
    released_det_init(again, torch.Generator().manual_seed(0))
    assert torch.equal(again.classifier.mlp1.weight, classifier.mlp1.weight)  # seeded
