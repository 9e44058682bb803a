"""Distributed data parallel helpers: ``torchrun`` detection, process group, batch order.

Under ``torchrun`` (environment ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) the process group is
initialised with ``gloo`` on CPU and ``nccl`` on CUDA; only rank 0 writes files.
:class:`ResumableBatchSampler` gives every rank its share of a permutation fixed by
``(seed, epoch)`` (through ``DistributedSampler``), starting at any step, so a resumed run
sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1


def setup_distributed(device: torch.device) -> DistInfo:
    """Initialise the process group when launched by ``torchrun``; return this process's place.

    ``device`` is the device asked for; under CUDA each process takes ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a one-process run)."""
    if info.distributed:
        dist.barrier()


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if this run created one."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Return the mean of ``value`` over all processes."""
    if not info.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64,
                          device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return float(tensor.item()) / info.world_size


class ResumableBatchSampler:
    """Endless batches of dataset indices for one rank, deterministic in ``(seed, epoch)``.

    Epoch ``e`` shuffles with ``DistributedSampler(seed=seed)`` after ``set_epoch(e)`` and drops
    the last incomplete batch; iteration starts at global step ``start_step``.
    """

    def __init__(self, dataset_len: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, start_step: int = 0) -> None:
        """Describe the batches; no data is read."""
        self.sampler = DistributedSampler(range(dataset_len), num_replicas=world_size, rank=rank,
                                          shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.batches_per_epoch = len(self.sampler) // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(f"{dataset_len} samples are too few for batch size {batch_size} "
                             f"on {world_size} process(es); lower --batch-size")
        self.start_step = start_step

    def epoch_of(self, step: int) -> int:
        """Return the epoch that global step ``step`` belongs to."""
        return step // self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        """Yield lists of indices forever, from ``start_step`` on."""
        epoch, offset = divmod(self.start_step, self.batches_per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)
            for b in range(offset, self.batches_per_epoch):
                yield indices[b * self.batch_size:(b + 1) * self.batch_size]
            epoch, offset = epoch + 1, 0


class GroupedBatchSampler(ResumableBatchSampler):
    """Endless batches of ``images_per_batch`` images x ``per_image`` samples of each.

    ``groups`` lists the dataset indices of each image's samples (its regions' expressions).
    Images are shuffled per epoch as :class:`ResumableBatchSampler` shuffles samples; the
    ``per_image`` samples of an image are drawn without replacement when it has enough (with
    replacement otherwise) from a generator seeded by ``(seed, epoch, image)``. The network then
    runs its backbone once per image for several expressions (``image_index``), and each step
    sees the same picture with different targets.
    """

    def __init__(self, groups: list[list[int]], images_per_batch: int, per_image: int,
                 seed: int, rank: int = 0, world_size: int = 1, start_step: int = 0, *,
                 weights: list[float] | None = None, buckets: list[int] | None = None) -> None:
        """Describe the batches; no data is read.

        ``weights`` (one per dataset index) draws an image's samples with those weights instead
        of uniformly (e.g. relations three times as often). ``buckets`` (one per group) keeps a
        batch's images in one bucket (one input shape): an image of another bucket than the
        batch's first is replaced by one of the first's bucket, drawn from ``(seed, step)``.
        """
        if per_image < 1:
            raise ValueError(f"per_image must be >= 1, got {per_image}")
        kept = [k for k, g in enumerate(groups) if g]
        self.groups = [list(groups[k]) for k in kept]
        super().__init__(len(self.groups), images_per_batch, seed, rank, world_size,
                         start_step)
        self.per_image = per_image
        self.seed = seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if self.weights is not None and bool((self.weights <= 0).any()):
            raise ValueError("sample weights must be positive")
        self.buckets = None
        if buckets is not None:
            if len(buckets) != len(groups):
                raise ValueError(f"{len(buckets)} buckets for {len(groups)} groups")
            self.buckets = [buckets[k] for k in kept]
            self.members: dict[int, list[int]] = {}
            for image, bucket in enumerate(self.buckets):
                self.members.setdefault(bucket, []).append(image)

    def _same_bucket(self, images: list[int], step: int) -> list[int]:
        if self.buckets is None:
            return images
        bucket = self.buckets[images[0]]
        members = self.members[bucket]
        rng = torch.Generator().manual_seed(hash((self.seed, step, 1699)) % 2**62)
        return [image if self.buckets[image] == bucket else
                members[int(torch.randint(len(members), (1,), generator=rng))]
                for image in images]

    def _picks(self, group: list[int], rng: torch.Generator) -> torch.Tensor:
        if self.weights is not None:
            weights = self.weights[group]
            return torch.multinomial(weights, self.per_image,
                                     replacement=len(group) < self.per_image, generator=rng)
        if len(group) >= self.per_image:
            return torch.randperm(len(group), generator=rng)[:self.per_image]
        return torch.randint(len(group), (self.per_image,), generator=rng)

    def __iter__(self) -> Iterator[list[int]]:
        """Yield lists of ``images_per_batch * per_image`` indices forever."""
        for step, images in enumerate(super().__iter__(), start=self.start_step):
            epoch = self.epoch_of(step)
            batch = []
            for image in self._same_bucket(images, step):
                group = self.groups[image]
                rng = torch.Generator().manual_seed(hash((self.seed, epoch, image)) % 2**62)
                batch += [group[int(i)] for i in self._picks(group, rng)]
            yield batch
