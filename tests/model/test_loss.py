"""Tests of the weighted logistic loss (and the optional Dice term) against hand computations."""

import math

import pytest
import torch

from refseg_model.loss import soft_dice_loss, weighted_logistic_loss


def test_matches_hand_computation():
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]]])
    labels = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # fg: 3*log(1+e^-2), 3*log(1+e^1); bg: 1*log(1+e^0), 1*log(1+e^3)
    expected = (3 * math.log1p(math.exp(-2)) + 3 * math.log1p(math.exp(1))
                + math.log(2) + math.log1p(math.exp(3))) / 4
    assert weighted_logistic_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_weights_and_label_shape():
    logits = torch.zeros(2, 1, 3, 3)
    labels = torch.ones(2, 3, 3)
    assert weighted_logistic_loss(logits, labels, w_fg=5.0).item() == pytest.approx(
        5 * math.log(2))
    assert weighted_logistic_loss(logits, 1 - labels, w_bg=0.5).item() == pytest.approx(
        0.5 * math.log(2))
    with pytest.raises(ValueError, match="coarse labels"):
        weighted_logistic_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 16, 16))


def test_gradient_pushes_towards_labels():
    logits = torch.zeros(1, 1, 2, 2, requires_grad=True)
    labels = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    weighted_logistic_loss(logits, labels).backward()
    assert (logits.grad[labels == 1] < 0).all() and (logits.grad[labels == 0] > 0).all()


def test_soft_dice_matches_hand_computation_per_sample():
    logits = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]], [[[100.0, -100.0], [-100.0, -100.0]]]])
    labels = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    # sample 1: p = 0.5 everywhere: 1 - (2 * 0.5 + 1) / (2 + 1 + 1); sample 2: perfect -> 0
    expected = (1 - 2.0 / 4.0 + 0.0) / 2
    assert soft_dice_loss(logits, labels).item() == pytest.approx(expected, abs=1e-6)


def test_soft_dice_weighs_a_small_object_like_a_large_one():
    small, large = torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
    small[..., :2, :2], large[..., :, :16] = 1, 1
    # Predicting nothing: the logistic loss barely notices the small object, Dice fully does.
    nothing = torch.full((1, 1, 32, 32), -8.0)
    assert weighted_logistic_loss(nothing, small) < 0.05 * weighted_logistic_loss(nothing, large)
    assert soft_dice_loss(nothing, small) > 0.75 and soft_dice_loss(nothing, large) > 0.99


def test_training_criterion_adds_dice_only_when_asked():
    from refseg_model.config import TrainConfig, load_config
    from refseg_model.train import criterion

    logits, labels = torch.randn(2, 1, 8, 8), (torch.rand(2, 8, 8) > 0.7).float()
    paper = load_config("paper").train
    assert paper.dice_weight == 0.0
    assert criterion(logits, labels, paper) == weighted_logistic_loss(logits, labels)
    mixed = TrainConfig(dice_weight=0.5)
    assert criterion(logits, labels, mixed).item() == pytest.approx(
        (weighted_logistic_loss(logits, labels) + 0.5 * soft_dice_loss(logits, labels)).item())
