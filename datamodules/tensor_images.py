"""Base DataModule for image sets held whole in memory as one uint8 tensor per split.

Batches leave the DataLoader as uint8 (N, C, H, W) plus labels and are turned into normalised floats, and
augmented when training, in ``on_after_batch_transfer``: on a GPU that work runs on the GPU, so the data never
waits on CPU workers. ``augment="albumentations"`` instead runs a per-sample albumentations pipeline in the
DataLoader workers (for CPU training with several workers); normalisation stays on the device.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.augment import batch_augment

AUGMENTS = ("batch", "albumentations", "none")


class TensorImageDataset(Dataset):
    """uint8 images (N, C, H, W) and labels (N,) or {head: (N,)}; fetches whole batches at once."""

    def __init__(self, images: torch.Tensor, labels, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def _labels(self, idx):
        if isinstance(self.labels, Mapping):
            return {k: v[idx] for k, v in self.labels.items()}
        return self.labels[idx]

    def __getitem__(self, i):
        return self.__getitems__([i])

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.long)
        images = self.images[idx]
        if self.transform is not None:
            hwc = images.permute(0, 2, 3, 1).numpy()
            images = torch.from_numpy(np.stack([self.transform(image=im)["image"] for im in hwc])).permute(0, 3, 1, 2)
        return images, self._labels(idx)


def _identity(batch):
    return batch


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation per epoch that is a pure function of (seed, epoch), so data order does not depend on
    the global RNG (an LR range test or a resume cannot shift it); ``skip`` drops the first indices once."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        if epoch != self.epoch:
            self.epoch, self.skip = epoch, 0

    def __iter__(self):
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch))
        start, self.skip = self.skip, 0
        return iter(perm[start:].tolist())

    def __len__(self):
        return self.n


class ResumableDataLoader(DataLoader):
    """A DataLoader whose state (epoch, batches already trained on) goes into Lightning checkpoints, so a run
    resumed mid-epoch continues with the next batch of the same permutation."""

    def __init__(self, *args, batches_done: Callable[[], int] = lambda: 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": int(self.batches_done())}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.epoch = state["epoch"]
        self.sampler.skip = state["batches"] * self.batch_size


class TensorImageDataModule(pl.LightningDataModule):
    """Shared machinery; subclasses implement :meth:`load` returning (train_x, train_y, test_x, test_y, classes).

    Args:
        batch_size: training batch size (> 0).
        eval_batch_size: validation/test batch size (default: 2 x batch_size).
        val_fraction: fraction of the training split held out for validation; 0 validates on the test split.
        augment: ``batch`` (tensor ops on the batch's device), ``albumentations`` (per sample in workers), ``none``.
        crop_padding: reflect padding before the random crop (translation of up to +-padding pixels).
        flip: random horizontal flip.
        cutout: side of the square cut out of each training image (0: off).
        num_workers: DataLoader workers.
        drop_last: drop the last incomplete training batch.
        seed: seed for the validation split, the data order and the augmentation.
        resized_crop_scale: (min, max) area fraction of a batched random-resized crop (null: off).
        resized_crop_ratio: (min, max) aspect ratio of that crop.
        color_jitter: batched brightness/contrast/saturation jitter strength (0: off).
    """

    range_test_batch: int | None = None  # the LR range test's running batch count while it sweeps

    def __init__(self, batch_size: int = 512, eval_batch_size: int | None = None, val_fraction: float = 0.0,
                 augment: str = "batch", crop_padding: int = 4, flip: bool = True, cutout: int = 0,
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

    @property
    def heads(self) -> dict[str, int]:
        """Classification heads and their class counts, e.g. {"label": 10}."""
        raise NotImplementedError

    # -- Lightning hooks ------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_x, train_y, test_x, test_y, self.classes = self.load()
        if self.val_fraction > 0:
            n_val = max(1, int(round(len(train_x) * self.val_fraction)))
            perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.seed))
            val_idx, train_idx = perm[:n_val], perm[n_val:]
            val_x, val_y = train_x[val_idx], _take(train_y, val_idx)
            train_x, train_y = train_x[train_idx], _take(train_y, train_idx)
        else:
            val_x, val_y = test_x, test_y
        as_float = train_x.float() / 255
        self.mean = as_float.mean(dim=(0, 2, 3))
        self.std = as_float.std(dim=(0, 2, 3))
        self.train_set = TensorImageDataset(train_x, train_y, self._albumentations(train_x.shape[-1]))
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
        if self.flip:
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

    def _batches_done(self) -> int:
        """Training batches of the current epoch that the training step has consumed (Lightning's progress)."""
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else 0

    def train_dataloader(self):
        return ResumableDataLoader(self.train_set, batch_size=self.batch_size, drop_last=self.drop_last,
                                   sampler=EpochShuffleSampler(len(self.train_set), self.seed),
                                   batches_done=self._batches_done, **self._loader_kwargs())

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
        images, labels = batch
        x = self.normalize(images)
        trainer = self.trainer
        if self.augment == "batch" and trainer is not None and trainer.training:
            x = batch_augment(x, self.crop_padding, self.flip, self.cutout, self._batch_generator(x.device),
                              mean=self.mean, std=self.std, **self.batched_ops)
        return x, labels

    def _batch_generator(self, device) -> torch.Generator:
        """Augmentation randomness as a pure function of (seed, epoch, batch index): resumed runs and runs with an
        LR range test in front see exactly the same augmented batches as uninterrupted ones."""
        trainer = self.trainer
        batch_idx = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # batches before this one
        epoch = trainer.current_epoch
        if self.range_test_batch is not None:  # set by the LR range test during its sweep
            epoch, batch_idx = -1, self.range_test_batch
        key = ((self.seed * 1_000_003 + epoch) * 1_000_003 + batch_idx) % (2 ** 63)
        return torch.Generator(device=device).manual_seed(key)

    def init_images(self, n: int = 5000) -> torch.Tensor:
        """The first ``n`` training images, normalised (for data-dependent initialisation)."""
        self.setup("fit")
        return self.normalize(self.train_set.images[:n])

    def steps_per_epoch(self) -> int:
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
