"""Tests of the weighted logistic loss against a hand computation."""

import math

import pytest
import torch

from refseg_model.loss import weighted_logistic_loss


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
