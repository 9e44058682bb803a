"""Tests of ``refseg_model.ddp``: the batch order of one or several processes, resumed or not.

The two-process run itself (torchrun, gloo) is ``test_train.py::test_ddp_two_processes_on_gloo``.
"""

import itertools

import pytest
import torch

from refseg_model.ddp import (
    DistInfo,
    GroupedBatchSampler,
    ResumableBatchSampler,
    all_reduce_mean,
    barrier,
    setup_distributed,
)


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_batches_cover_each_epoch_once_and_reshuffle_the_next():
    sampler = ResumableBatchSampler(10, batch_size=3, seed=1)
    assert sampler.batches_per_epoch == 3  # the last incomplete batch is dropped
    batches = _take(sampler, 6)
    first, second = sum(batches[:3], []), sum(batches[3:], [])
    assert len(set(first)) == 9 and len(set(second)) == 9
    assert first != second  # epoch 1 is another permutation
    assert _take(ResumableBatchSampler(10, 3, seed=1), 6) == batches  # fixed by the seed
    assert _take(ResumableBatchSampler(10, 3, seed=2), 6) != batches
    assert [sampler.epoch_of(s) for s in (0, 2, 3, 7)] == [0, 0, 1, 2]


def test_a_resumed_sampler_continues_with_the_batches_it_would_have_given():
    full = _take(ResumableBatchSampler(23, 4, seed=5), 20)
    for start in (1, 5, 11):
        assert _take(ResumableBatchSampler(23, 4, seed=5, start_step=start), 20 - start) == \
            full[start:]


def test_two_ranks_share_each_epoch_without_overlap():
    ranks = [_take(ResumableBatchSampler(16, 2, seed=0, rank=r, world_size=2), 4)
             for r in (0, 1)]
    seen = [sum(batches, []) for batches in ranks]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(16))


def test_too_few_samples_for_a_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="lower --batch-size"):
        ResumableBatchSampler(3, batch_size=4, seed=0)


def test_grouped_batches_hold_k_samples_of_each_image_and_resume_exactly():
    groups = [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(10)] + [[30]]
    sampler = GroupedBatchSampler(groups, images_per_batch=2, per_image=2, seed=7)
    batches = _take(sampler, 12)
    owner = {index: g for g, members in enumerate(groups) for index in members}
    for batch in batches:
        assert len(batch) == 4
        assert owner[batch[0]] == owner[batch[1]] and owner[batch[2]] == owner[batch[3]]
        if owner[batch[0]] != 10:
            assert batch[0] != batch[1]  # without replacement when the image has enough
    assert _take(GroupedBatchSampler(groups, 2, 2, seed=7, start_step=5), 7) == batches[5:]
    with pytest.raises(ValueError, match="per_image must be >= 1"):
        GroupedBatchSampler(groups, 2, 0, seed=7)


def test_a_one_process_run_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = setup_distributed(torch.device("cpu"))
    assert info == DistInfo() and info.is_main and not info.distributed
    assert all_reduce_mean(2.5, info) == 2.5
    barrier(info)  # returns at once
    assert not torch.distributed.is_initialized()
