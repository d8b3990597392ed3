"""The batches of an in-memory image set: what the training DataLoader yields and how it resumes, and the
validation/test loader that sees each image once under DDP.

Batches leave the training DataLoader as ``(images, labels, key)``: uint8 images (N, C, H, W), labels (N,) or
{head: (N,)}, and ``key``, a Python int that seeds this batch's augmentation. The key is a pure function of
(seed, epoch, batch index in the epoch, rank) chosen by :class:`EpochBatchSampler`, so a batch carries its own
randomness: a resumed run, a second iterator over the loader or another rank never shifts it.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, NamedTuple

import numpy as np
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, SequentialSampler

from datamodules.augment import alternating_flip


def take_labels(labels, idx):
    """``labels[idx]`` for labels (N,) or {head: (N,)}."""
    if isinstance(labels, Mapping):
        return {k: v[idx] for k, v in labels.items()}
    return labels[idx]


def batch_key(seed: int, epoch: int, index: int, rank: int = 0) -> int:
    """The augmentation seed of training batch ``index`` of ``epoch`` on ``rank``: a well-mixed 63-bit int."""
    words = np.random.SeedSequence([int(seed) % 2**64, epoch, index, rank]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class BatchRequest(NamedTuple):
    """What :class:`EpochBatchSampler` yields: the dataset indices of one training batch, its augmentation key and
    the epoch it belongs to."""
    indices: list[int]
    key: int
    epoch: int = 0


class TensorImageDataset(Dataset):
    """uint8 images (N, C, H, W) and labels (N,) or {head: (N,)}; fetches whole batches at once.

    ``dataset[BatchRequest(indices, key, epoch)]`` is a keyed training batch ``(images, labels, key)``. With
    ``flipped_first`` (one bool per image) its images are mirrored by :func:`~datamodules.augment.alternating_flip`
    for that epoch; then the albumentations ``transform`` (if any) runs, reseeded with ``key`` first, so the batch
    does not depend on which worker made it or what that worker made before.
    """

    def __init__(self, images: torch.Tensor, labels, transform=None, flipped_first: torch.Tensor | None = None):
        self.images, self.labels, self.transform = images, labels, transform
        self.flipped_first = flipped_first

    def __len__(self):
        return len(self.images)

    def __getitem__(self, item):
        if isinstance(item, BatchRequest):
            return (*self.__getitems__(item.indices, item.key, item.epoch), item.key)
        return self.__getitems__([item])

    def __getitems__(self, indices, key: int | None = None, epoch: int | None = None):
        idx = torch.as_tensor(indices, dtype=torch.long)
        images = self.images[idx]
        if epoch is not None and self.flipped_first is not None:
            images = alternating_flip(images, self.flipped_first[idx], epoch)
        if self.transform is not None:
            if key is not None:
                self.transform.set_random_seed(key)
            hwc = images.permute(0, 2, 3, 1).numpy()
            images = torch.from_numpy(np.stack([self.transform(image=im)["image"] for im in hwc])).permute(0, 3, 1, 2)
        return images, take_labels(self.labels, idx)


def identity_collate(batch):
    """The DataLoader's ``collate_fn``: the dataset already returns whole batches."""
    return batch


class EpochBatchSampler(DistributedSampler):
    """Training batches of one rank, as :class:`BatchRequest` s: the order is a permutation that is a pure function
    of (seed, epoch), sharded by rank (rank r takes every ``num_replicas``-th index, as DistributedSampler does),
    and each batch's key is :func:`batch_key` (seed, epoch, batch index, rank).

    It is a ``DistributedSampler`` so that Lightning uses it as it is under DDP instead of wrapping it (Lightning
    2.6 wraps any other sampler in a ``DistributedSamplerWrapper``, which neither shards by batch nor resumes).
    Its state is (``epoch``, ``start``): an iterator begins at batch ``start`` of ``epoch``. ``start`` is read when
    an iterator begins, never consumed, so a second iterator cannot take the resume position from the first;
    ``set_epoch`` to another epoch resets it to 0. Use it with ``DataLoader(batch_size=None)``.
    """

    def __init__(self, dataset, batch_size: int, seed: int = 0, drop_last: bool = True, num_replicas: int = 1,
                 rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.batch_size, self.drop_last_batch = batch_size, drop_last
        n = len(dataset)
        self.per_rank = n // num_replicas if drop_last else math.ceil(n / num_replicas)
        self.start = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def rank_indices(self, epoch: int) -> list[int]:
        """This rank's share of epoch ``epoch``'s permutation (padded by wrapping, or truncated with drop_last,
        so that every rank gets ``per_rank`` indices and the same number of batches)."""
        n = len(self.dataset)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)).tolist()
        total = self.per_rank * self.num_replicas
        perm = (perm * math.ceil(total / n))[:total]
        return perm[self.rank::self.num_replicas]

    def batch_epoch(self) -> int:
        """The epoch whose order and augmentation keys the next iterator yields: the current one."""
        return self.epoch

    def __iter__(self):
        epoch, start = self.batch_epoch(), self.start  # this iterator's own copy of the position
        mine = self.rank_indices(epoch)
        for b in range(start, len(self)):
            yield BatchRequest(mine[b * self.batch_size:(b + 1) * self.batch_size],
                               batch_key(self.seed, epoch, b, self.rank), epoch)

    def __len__(self):
        if self.drop_last_batch:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)


class RepeatedBatchSampler(EpochBatchSampler, SequentialSampler):
    """Lightning's ``overfit_batches`` (``debug=overfit``): every epoch yields epoch 0's batches, the same images
    with the same augmentation keys, so the run trains on the same few batches over and over.

    It is also a ``SequentialSampler`` because Lightning 2.6 keeps only such a sampler when overfitting and replaces
    any other by a ``SequentialSampler`` over single images, which a loader of whole batches cannot take (it failed
    with a MisconfigurationException). No ``SequentialSampler`` code runs: :class:`EpochBatchSampler` comes first.
    """

    def batch_epoch(self) -> int:
        return 0


class ResumableDataLoader(DataLoader):
    """The training DataLoader over an :class:`EpochBatchSampler`. Its state (epoch, batches already trained on,
    number of ranks) goes into Lightning checkpoints, so a run resumed mid-epoch continues with the next batch.

    ``batches_trained`` says how many batches of the current epoch the training step has consumed (not how many
    this loader has yielded: batches are fetched before they are trained on, and other iterators may exist).
    Iterators start lazily, at their first ``next``, so they see the position set by ``load_state_dict`` and the
    epoch set by ``set_epoch`` even when created before them (Lightning 2.6 creates the first one early).
    """

    def __init__(self, dataset, sampler: EpochBatchSampler, batches_trained: Callable[[], int] = lambda: 0,
                 **kwargs):
        super().__init__(dataset, batch_size=None, sampler=sampler, **kwargs)
        self.batches_trained = batches_trained

    def __iter__(self):
        return self._lazy_iter()

    def _lazy_iter(self):
        yield from super().__iter__()

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": int(self.batches_trained()),
                "num_replicas": self.sampler.num_replicas}

    def load_state_dict(self, state: dict) -> None:
        epoch, batches = state["epoch"], state["batches"]
        saved_replicas = state.get("num_replicas", 1)
        if batches >= len(self.sampler):  # saved at the end of an epoch: the next one starts afresh
            epoch, batches = epoch + 1, 0
        elif batches and saved_replicas != self.sampler.num_replicas:
            warnings.warn(f"resuming mid-epoch on {self.sampler.num_replicas} processes from a checkpoint saved on "
                          f"{saved_replicas}: the rest of epoch {epoch} is sharded differently, so the run is not "
                          "the one that was interrupted (resume from an epoch-end checkpoint for that)")
        self.sampler.epoch, self.sampler.start = epoch, batches


#: drop_last leaving more than this share of a rank's training images out of every epoch gets a warning: a recipe's
#: batch of 256 on 480 of one's own images trained on 256 an epoch, silently
LEFT_OUT_SHARE = 0.1


def make_train_loader(dataset, batch_size: int, seed: int, drop_last: bool, world: dict,
                      batches_trained: Callable[[], int], repeat: bool = False,
                      **loader_kwargs) -> ResumableDataLoader:
    """The training loader of this rank (``world``: Lightning's ``distributed_sampler_kwargs``, or {}); ``repeat``:
    the same batches every epoch (:class:`RepeatedBatchSampler`, for Lightning's ``overfit_batches``)."""
    sampler_class = RepeatedBatchSampler if repeat else EpochBatchSampler
    sampler = sampler_class(dataset, batch_size, seed, drop_last, num_replicas=world.get("num_replicas", 1),
                            rank=world.get("rank", 0))
    if len(sampler) == 0:
        raise ValueError(f"data.batch_size={batch_size} is larger than the {sampler.per_rank} training images of "
                         f"each of the {sampler.num_replicas} processes; lower it or set data.drop_last=false")
    left_out = sampler.per_rank - len(sampler) * batch_size if drop_last else 0
    if left_out > LEFT_OUT_SHARE * sampler.per_rank:
        warnings.warn(f"data.batch_size={batch_size} leaves {left_out} of the {sampler.per_rank} training images "
                      f"({left_out / sampler.per_rank:.0%}) out of every epoch (data.drop_last=true drops the last, "
                      f"incomplete batch; other images each epoch): a smaller data.batch_size or data.drop_last=false "
                      f"trains on them all", stacklevel=2)
    return ResumableDataLoader(dataset, sampler, batches_trained=batches_trained, **loader_kwargs)


def make_eval_loader(dataset, batch_size: int, world: dict, **loader_kwargs) -> DataLoader:
    """A validation/test loader in order (``world``: Lightning's ``distributed_sampler_kwargs``, or {}).

    Under DDP each rank takes every ``num_replicas``-th image and no image is seen twice. Lightning's own sampler
    (a ``DistributedSampler``) would pad the split with up to ``num_replicas - 1`` repeated images so that every
    rank gets as many, which skews val/test accuracy and the sweeps that select on it. Ranks may then run one batch
    fewer: safe here, as evaluation logs per epoch (torchmetrics and Lightning's mean sync sums and counts once) and
    DDP syncs no buffers without gradients. A split smaller than the number of ranks keeps Lightning's sampler."""
    replicas = world.get("num_replicas", 1)
    sampler = None
    if replicas > 1 and len(dataset) >= replicas:
        sampler = UnrepeatedDistributedSampler(dataset, num_replicas=replicas, rank=world.get("rank", 0),
                                               shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **loader_kwargs)


def batches_trained(trainer) -> int:
    """Training batches of the current epoch that the training step has consumed (0 without a trainer).

    Lightning 2.6 has no public counter for this, and the loader cannot count it itself: the batches it yields
    include those of other iterators over it (an LR range test's) and a batch fetched but not yet trained on
    (a checkpoint written from inside the step). So this is the one place that reads Lightning's private loop
    progress (the counter Lightning's own mid-epoch restart uses).
    """
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else 0
