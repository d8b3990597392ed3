"""Base DataModule for image sets held whole in memory as one uint8 tensor per split.

Batches leave the training DataLoader as ``(images, labels, key)``: uint8 images (N, C, H, W), labels (N,) or
{head: (N,)}, and ``key``, a Python int that seeds this batch's augmentation. The key is a pure function of
(seed, epoch, batch index in the epoch, rank) chosen by :class:`EpochBatchSampler`, so a batch carries its own
randomness: a resumed run, a second iterator over the loader or another rank never shifts it. Validation and test
batches are ``(images, labels)``. ``on_after_batch_transfer`` normalises, augments training batches with a
``torch.Generator`` on the batch's device seeded by the key (on a GPU the work runs on the GPU, so the data never
waits on CPU workers) and returns ``(images, labels)`` for every split. ``augment="albumentations"`` instead runs a
per-sample albumentations pipeline in the DataLoader workers, reseeded from the key for every batch; normalisation
stays on the device.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from datamodules.augment import alternating_flip, batch_augment

AUGMENTS = ("batch", "albumentations", "none")
FLIPS = ("random", "alternating", "none")  # also accepted: true (random), false (none)


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

    def _labels(self, idx):
        if isinstance(self.labels, Mapping):
            return {k: v[idx] for k, v in self.labels.items()}
        return self.labels[idx]

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
        return images, self._labels(idx)


def _identity(batch):
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

    def __iter__(self):
        epoch, start = self.epoch, self.start  # this iterator's own copy of the position
        mine = self.rank_indices(epoch)
        for b in range(start, len(self)):
            yield BatchRequest(mine[b * self.batch_size:(b + 1) * self.batch_size],
                               batch_key(self.seed, epoch, b, self.rank), epoch)

    def __len__(self):
        if self.drop_last_batch:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)


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


class TensorImageDataModule(pl.LightningDataModule):
    """Shared machinery; subclasses implement :meth:`load` returning (train_x, train_y, test_x, test_y, classes).

    Args:
        batch_size: training batch size (> 0).
        eval_batch_size: validation/test batch size (default: 2 x batch_size).
        val_fraction: fraction of the training split held out for validation; 0 validates on the test split.
        augment: ``batch`` (tensor ops on the batch's device), ``albumentations`` (per sample in workers), ``none``.
        crop_padding: reflect padding before the random crop (translation of up to +-padding pixels).
        flip: horizontal flip: ``random`` (or true) mirrors each image with probability 1/2 in every epoch;
            ``alternating`` mirrors a fixed random half in even epochs and the other half in odd ones (airbench's
            derandomised flip, Jordan 2024, section 3.6); ``none`` (or false) never.
        cutout: side of the square cut out of each training image (0: off).
        num_workers: DataLoader workers.
        drop_last: drop the last incomplete training batch.
        seed: seed for the validation split, the data order and the augmentation.
        resized_crop_scale: (min, max) area fraction of a batched random-resized crop (null: off).
        resized_crop_ratio: (min, max) aspect ratio of that crop.
        color_jitter: batched brightness/contrast/saturation jitter strength (0: off).
    """

    def __init__(self, batch_size: int = 512, eval_batch_size: int | None = None, val_fraction: float = 0.0,
                 augment: str = "batch", crop_padding: int = 4, flip: bool | str = "random", cutout: int = 0,
                 num_workers: int = 0, drop_last: bool = True, seed: int = 0,
                 resized_crop_scale: tuple[float, float] | None = None,
                 resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), color_jitter: float = 0.0):
        super().__init__()
        _check_batched_ops(resized_crop_scale, resized_crop_ratio, color_jitter)
        self.batched_ops = dict(resized_crop_scale=resized_crop_scale, resized_crop_ratio=resized_crop_ratio,
                                jitter=color_jitter)
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"data.batch_size must be a positive integer, got {batch_size!r}")
        if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size <= 0):
            raise ValueError(f"data.eval_batch_size must be a positive integer or null, got {eval_batch_size!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction!r}")
        if augment not in AUGMENTS:
            raise ValueError(f"data.augment: unknown value {augment!r}; choose one of {list(AUGMENTS)}")
        if isinstance(flip, bool):  # data.flip=true / false
            flip = "random" if flip else "none"
        if flip not in FLIPS:
            raise ValueError(f"data.flip: unknown value {flip!r}; choose one of {list(FLIPS)} (or true / false)")
        if crop_padding < 0 or cutout < 0:
            raise ValueError("data.crop_padding and data.cutout must be >= 0")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or 2 * batch_size
        self.val_fraction, self.augment = val_fraction, augment
        self.crop_padding, self.flip, self.cutout = crop_padding, flip, cutout
        self.num_workers, self.drop_last, self.seed = num_workers, drop_last, seed
        self.classes: list[str] = []
        self.mean = self.std = None
        self.train_set = self.val_set = self.test_set = None

    # -- subclass API ---------------------------------------------------------------------------------------------
    def load(self):
        raise NotImplementedError

    def load_validation(self):
        """A validation split that the data set has of its own, ``(images, labels)``, used when ``val_fraction`` is 0;
        None (the default): then validation runs on the test split."""
        return None

    @property
    def heads(self) -> dict[str, int]:
        """Classification heads and their class counts, e.g. {"label": 10}."""
        raise NotImplementedError

    # -- Lightning hooks ------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_x, train_y, test_x, test_y, self.classes = self.load()
        own_val = self.load_validation()
        if self.val_fraction > 0:
            n_val = max(1, int(round(len(train_x) * self.val_fraction)))
            perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.seed))
            val_idx, train_idx = perm[:n_val], perm[n_val:]
            val_x, val_y = train_x[val_idx], _take(train_y, val_idx)
            train_x, train_y = train_x[train_idx], _take(train_y, train_idx)
        elif own_val is not None:
            val_x, val_y = own_val
        else:  # val_fraction=0 and no validation split of its own: the paper recipes' "train on all, test at the end"
            val_x, val_y = test_x, test_y
        as_float = train_x.float() / 255
        self.mean = as_float.mean(dim=(0, 2, 3))
        self.std = as_float.std(dim=(0, 2, 3))
        flipped_first = None
        if self.flip == "alternating" and self.augment != "none":
            # a stream of its own: not the split's or the epoch order's (seeded with the same data.seed)
            flip_seed = int(np.random.SeedSequence([int(self.seed) % 2**64, 0xF11D]).generate_state(1)[0])
            flipped_first = torch.rand(len(train_x), generator=torch.Generator().manual_seed(flip_seed)) < 0.5
        self.train_set = TensorImageDataset(train_x, train_y, self._albumentations(train_x.shape[-1]), flipped_first)
        self.val_set = TensorImageDataset(val_x, val_y)
        self.test_set = TensorImageDataset(test_x, test_y)
        if len(self.train_set) < self.batch_size and self.drop_last:
            raise ValueError(f"data.batch_size={self.batch_size} is larger than the {len(self.train_set)} "
                             "training images; lower it or set data.drop_last=false")

    def _albumentations(self, size: int):
        if self.augment != "albumentations":
            return None
        import albumentations as A
        import cv2

        fill = tuple(int(round(255 * m)) for m in self.mean.tolist())
        steps = []
        if self.crop_padding:
            steps += [A.PadIfNeeded(size + 2 * self.crop_padding, size + 2 * self.crop_padding,
                                    border_mode=cv2.BORDER_REFLECT_101), A.RandomCrop(size, size)]
        if self.flip == "random":
            steps.append(A.HorizontalFlip(p=0.5))
        if self.cutout:
            steps.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(self.cutout, self.cutout),
                                         hole_width_range=(self.cutout, self.cutout), fill=fill, p=1.0))
        return A.Compose(steps)

    def _loader_kwargs(self) -> dict:
        return dict(num_workers=self.num_workers, collate_fn=_identity, persistent_workers=self.num_workers > 0,
                    pin_memory=torch.cuda.is_available())

    def _loader(self, dataset, batch_size, shuffle, drop_last):
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                          **self._loader_kwargs())

    def train_dataloader(self):
        world = (self.trainer.distributed_sampler_kwargs if self.trainer is not None else None) or {}
        sampler = EpochBatchSampler(self.train_set, self.batch_size, self.seed, self.drop_last,
                                    num_replicas=world.get("num_replicas", 1), rank=world.get("rank", 0))
        if len(sampler) == 0:
            raise ValueError(f"data.batch_size={self.batch_size} is larger than the {sampler.per_rank} training "
                             f"images of each of the {sampler.num_replicas} processes; lower it or set "
                             "data.drop_last=false")
        return ResumableDataLoader(self.train_set, sampler, batches_trained=self._batches_trained,
                                   **self._loader_kwargs())

    def _batches_trained(self) -> int:
        """Training batches of the current epoch that the training step has consumed.

        Lightning 2.6 has no public counter for this, and the loader cannot count it itself: the batches it yields
        include those of other iterators over it (an LR range test's) and a batch fetched but not yet trained on
        (a checkpoint written from inside the step). So this is the one place that reads Lightning's private loop
        progress (the counter Lightning's own mid-epoch restart uses).
        """
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else 0

    def val_dataloader(self):
        return self._loader(self.val_set, self.eval_batch_size, False, False)

    def test_dataloader(self):
        return self._loader(self.test_set, self.eval_batch_size, False, False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> float normalised with the training-set mean/std."""
        mean = self.mean.to(images.device).view(1, -1, 1, 1)
        std = self.std.to(images.device).view(1, -1, 1, 1)
        return (images.float() / 255 - mean) / std

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """``(images, labels, key)`` training batches -> normalised, augmented ``(images, labels)``;
        ``(images, labels)`` validation/test batches -> normalised ``(images, labels)``."""
        if len(batch) == 3:
            images, labels, key = batch
            x = self.normalize(images)
            if self.augment == "batch":
                generator = torch.Generator(device=x.device).manual_seed(key)
                x = batch_augment(x, self.crop_padding, self.flip == "random", self.cutout, generator,
                                  mean=self.mean, std=self.std, **self.batched_ops)
            return x, labels
        images, labels = batch
        return self.normalize(images), labels

    def init_images(self, n: int = 5000) -> torch.Tensor:
        """The first ``n`` training images, normalised (for data-dependent initialisation)."""
        self.setup("fit")
        return self.normalize(self.train_set.images[:n])

    def steps_per_epoch(self) -> int:
        """Training batches per epoch on a single process (under DDP each rank gets 1/world of the images)."""
        n = len(self.train_set)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


def _take(labels, idx):
    if isinstance(labels, Mapping):
        return {k: v[idx] for k, v in labels.items()}
    return labels[idx]


def _check_batched_ops(scale, ratio, jitter) -> None:
    if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"data.resized_crop_scale must be null or [min, max] with 0 < min <= max <= 1, got {scale}")
    if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
        raise ValueError(f"data.resized_crop_ratio must be [min, max] with 0 < min <= max, got {ratio}")
    if not 0 <= jitter < 1:
        raise ValueError(f"data.color_jitter must be in [0, 1), got {jitter}")
