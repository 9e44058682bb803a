"""Tests of ``refseg_model.rng``: the RNG states survive a checkpoint file."""

import random

import numpy as np
import torch

from refseg_model.rng import rng_state, seed_everything, set_rng_state


def _draws():
    return (random.random(), random.gauss(0, 1), float(np.random.rand()),
            float(np.random.standard_normal()), float(torch.rand(1)))


def test_states_saved_in_a_weights_only_file_continue_the_same_draws(tmp_path):
    seed_everything(3)
    _draws()
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = _draws()
    seed_everything(99)  # somewhere else entirely
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draws() == expected


def test_seed_everything_seeds_python_numpy_and_torch():
    seed_everything(5)
    first = _draws()
    seed_everything(5)
    assert _draws() == first
    seed_everything(6)
    assert _draws() != first
