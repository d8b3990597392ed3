"""Base DataModule for image sets held whole in memory as one uint8 tensor per split.

Every data source (CIFAR-10, synthetic images, an image folder, a CSV) goes through the same
:meth:`TensorImageDataModule.setup`: it asks the source for its splits (:meth:`~TensorImageDataModule.load_splits`,
which returns a :class:`Splits`), then does everything else once for all sources: the validation and test
fallbacks, the class counts, the channel statistics, the alternating-flip bits, the albumentations pipeline, the
datasets and the batch-size check.

Training batches leave the DataLoader as ``(images, labels, key)`` (see :mod:`datamodules.batches`); validation
and test batches as ``(images, labels)``. ``on_after_batch_transfer`` normalises, augments training batches with a
``torch.Generator`` on the batch's device seeded by the key (on a GPU the work runs on the GPU, so the data never
waits on CPU workers) and returns ``(images, labels)`` for every split. ``augment="albumentations"`` instead runs a
per-sample albumentations pipeline in the DataLoader workers, reseeded from the key for every batch; normalisation
stays on the device.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pytorch_lightning as pl
import torch

from datamodules.augment import batch_augment
from datamodules.batches import (  # noqa: F401  (re-exported: the names this module has always offered)
    BatchRequest, EpochBatchSampler, ResumableDataLoader, TensorImageDataset, batch_key, batches_trained,
    identity_collate, make_eval_loader, make_train_loader, take_labels)

AUGMENTS = ("batch", "albumentations", "none")
FLIPS = ("random", "alternating", "none")  # also accepted: true (random), false (none)
SPLITS = ("train", "val", "test")
# The names users' data gives each split (a folder under data.root, a CSV's split column), case aside: Kaggle's
# and many published sets' train/valid/test, Hugging Face's validation.
SPLIT_NAMES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
SPLIT_NAMES_SAID = ", ".join("/".join(names) for names in SPLIT_NAMES.values())  # for the messages


def split_of(name: str) -> str | None:
    """The split (SPLITS) a folder name or split-column value stands for; None for any other name."""
    name = name.strip().lower()
    return next((split for split, names in SPLIT_NAMES.items() if name in names), None)


@dataclass
class Split:
    """One split: uint8 images (N, C, H, W), labels (N,) or {head: (N,)}, and the image files when there are."""
    images: torch.Tensor
    labels: torch.Tensor | dict[str, torch.Tensor]
    paths: list[str] | None = None


@dataclass
class Splits:
    """What a data source gives :meth:`TensorImageDataModule.setup`.

    ``val`` None: validation runs on the test split; ``test`` None: the test split is the validation split (not
    both). ``vocabularies``: head -> class names (one head ``label`` for single-label data). ``stats_cache``: a
    JSON file that holds (or is to hold) the training split's channel statistics, or None to compute them every
    time. ``bad_files``: image files skipped because they are missing or do not decode.
    """
    train: Split
    val: Split | None
    test: Split | None
    vocabularies: dict[str, list[str]]
    stats_cache: str | None = None
    bad_files: list[str] = field(default_factory=list)


def channel_stats(images: torch.Tensor, cache_file: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std of uint8 images (N, C, H, W) in [0, 1], in float64 chunks (a memory
    map is read once, never copied whole); read from ``cache_file`` when it exists, else written to it."""
    if cache_file is not None and os.path.isfile(cache_file):
        with open(cache_file) as f:
            stats = json.load(f)
        return torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, len(images), 4096):
        chunk = images[start:start + 4096].double() / 255
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += (chunk ** 2).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = ((total_sq - count * mean ** 2) / max(1, count - 1)).clamp_min(1e-12).sqrt()
    if cache_file is not None:
        with open(cache_file, "w") as f:
            json.dump({"mean": mean.tolist(), "std": std.tolist()}, f)
    return mean.float(), std.float()


#: The label of an image whose class is unknown for a head (a CSV's empty cell with data.missing_labels=ignore):
#: PyTorch's default ``ignore_index``, which the classifier's loss and metrics skip (``IGNORE_INDEX`` is this).
UNKNOWN_LABEL = -100


def class_counts(labels, vocabularies: Mapping[str, list[str]]) -> dict[str, list[int]]:
    """{head: images per class} of labels (N,) (the one head) or {head: (N,)}; unknown labels count for no class."""
    per_head = labels if isinstance(labels, Mapping) else {next(iter(vocabularies)): labels}
    known = {h: torch.as_tensor(per_head[h]) for h in vocabularies}
    return {h: known[h][known[h] != UNKNOWN_LABEL].bincount(minlength=len(v)).tolist()
            for h, v in vocabularies.items()}


def holdout(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(rest, held out): a seeded random ``fraction`` (at least one image) of ``train`` held out."""
    n_val = max(1, int(round(len(train.images) * fraction)))
    perm = torch.randperm(len(train.images), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return (Split(train.images[train_idx], take_labels(train.labels, train_idx)),
            Split(train.images[val_idx], take_labels(train.labels, val_idx)))


def flip_bits(n: int, seed: int) -> torch.Tensor:
    """``data.flip=alternating``: which of ``n`` training images are mirrored in even epochs (the rest in odd
    ones); a random half drawn from a stream of its own, not the split's or the epoch order's (same data.seed)."""
    flip_seed = int(np.random.SeedSequence([int(seed) % 2**64, 0xF11D]).generate_state(1)[0])
    return torch.rand(n, generator=torch.Generator().manual_seed(flip_seed)) < 0.5


def albumentations_pipeline(size: int, crop_padding: int, flip: bool, cutout: int, mean: torch.Tensor):
    """The batched augmentation's crop, random flip and cutout (filled with the ``mean`` colour) as a per-sample
    albumentations pipeline for ``size`` x ``size`` uint8 images."""
    import albumentations as A
    import cv2

    steps = []
    if crop_padding:
        steps += [A.PadIfNeeded(size + 2 * crop_padding, size + 2 * crop_padding, border_mode=cv2.BORDER_REFLECT_101),
                  A.RandomCrop(size, size)]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if cutout:
        fill = tuple(int(round(255 * m)) for m in mean.tolist())
        steps.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(cutout, cutout),
                                     hole_width_range=(cutout, cutout), fill=fill, p=1.0))
    return A.Compose(steps)


class TensorImageDataModule(pl.LightningDataModule):
    """Shared machinery of every data source; a source implements :attr:`heads` and :meth:`load_splits` (see
    :class:`TrainTestDataModule` for sources with a train and a test split).

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
        norm_stats: (mean, std) per channel to normalise with instead of the training split's statistics (task=eval
            passes a checkpoint's, so other data is normalised as the model was trained).

    After :meth:`setup`: ``train_set``, ``val_set``, ``test_set`` (:class:`TensorImageDataset`); ``mean``, ``std``
    (training-split channel statistics, or ``norm_stats``); ``vocabularies`` (head -> class names) and ``classes``
    (the first head's); ``class_counts`` (head -> training images per class, for ``model.class_weights=balanced``);
    ``split_paths`` (split -> image files, for sources read from files, else {}); ``bad_files`` (files skipped).
    """

    resize_mode = "crop"  # how prediction brings other images to the training size (see checkpoint_metadata)

    def __init__(self, batch_size: int = 512, eval_batch_size: int | None = None, val_fraction: float = 0.0,
                 augment: str = "batch", crop_padding: int = 4, flip: bool | str = "random", cutout: int = 0,
                 num_workers: int = 0, drop_last: bool = True, seed: int = 0,
                 resized_crop_scale: tuple[float, float] | None = None,
                 resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), color_jitter: float = 0.0,
                 norm_stats: tuple[list[float], list[float]] | None = None):
        super().__init__()
        if isinstance(flip, bool):  # data.flip=true / false
            flip = "random" if flip else "none"
        _check_options(batch_size, eval_batch_size, val_fraction, augment, flip, crop_padding, cutout, num_workers)
        _check_batched_ops(resized_crop_scale, resized_crop_ratio, color_jitter)
        self.batched_ops = dict(resized_crop_scale=resized_crop_scale, resized_crop_ratio=resized_crop_ratio,
                                jitter=color_jitter)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or 2 * batch_size
        self.val_fraction, self.augment = val_fraction, augment
        self.crop_padding, self.flip, self.cutout = crop_padding, flip, cutout
        self.num_workers, self.drop_last, self.seed = num_workers, drop_last, seed
        self.classes: list[str] = []
        self.vocabularies: dict[str, list[str]] = {}
        self.class_counts: dict[str, list[int]] = {}
        self.split_paths: dict[str, list[str]] = {}
        self.bad_files: list[str] = []
        self.mean = self.std = None
        self.norm_stats = norm_stats
        self.train_set = self.val_set = self.test_set = None
        self.validates_on_test: bool | None = None  # after setup: the data has no validation split of its own

    # -- data source API ------------------------------------------------------------------------------------------
    def load_splits(self) -> Splits:
        """The splits, class names and (optionally) the statistics cache file that :meth:`setup` builds on."""
        raise NotImplementedError

    @property
    def heads(self) -> dict[str, int]:
        """Classification heads and their class counts, e.g. {"label": 10}; known before :meth:`setup`."""
        raise NotImplementedError

    # -- Lightning hooks ------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Builds the datasets from :meth:`load_splits`, once (later calls return at once)."""
        if self.train_set is not None:
            return
        data = self.load_splits()
        val = data.val if data.val is not None else data.test
        self.validates_on_test = data.val is None  # nothing is chosen on it (the max_lr trials read no validation)
        test = data.test if data.test is not None else data.val
        if val is None:
            raise ValueError(f"{type(self).__name__}: no validation or test split")
        train = data.train
        self.vocabularies = {head: list(names) for head, names in data.vocabularies.items()}
        self.classes = next(iter(self.vocabularies.values()))
        self.class_counts = class_counts(train.labels, self.vocabularies)
        self.split_paths = {} if train.paths is None else {
            name: [] if part is None else list(part.paths) for name, part in zip(SPLITS, (train, data.val, data.test))}
        self.bad_files = list(data.bad_files)
        self.mean, self.std = (channel_stats(train.images, data.stats_cache) if self.norm_stats is None else
                               tuple(torch.tensor(list(s), dtype=torch.float32) for s in self.norm_stats))
        alternating = self.flip == "alternating" and self.augment != "none"
        self.train_set = TensorImageDataset(train.images, train.labels, self._albumentations(train.images.shape[-1]),
                                            flip_bits(len(train.images), self.seed) if alternating else None)
        self.val_set = TensorImageDataset(val.images, val.labels)
        self.test_set = TensorImageDataset(test.images, test.labels)
        if stage in (None, "fit") and len(self.train_set) < self.batch_size and self.drop_last:  # only to train
            raise ValueError(f"data.batch_size={self.batch_size} is larger than the {len(self.train_set)} "
                             "training images; lower it or set data.drop_last=false")

    def _albumentations(self, size: int):
        """The per-sample pipeline of ``augment=albumentations``, None otherwise."""
        if self.augment != "albumentations":
            return None
        return albumentations_pipeline(size, self.crop_padding, self.flip == "random", self.cutout, self.mean)

    def _loader_kwargs(self) -> dict:
        return dict(num_workers=self.num_workers, collate_fn=identity_collate,
                    persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def _world(self) -> dict:
        return (self.trainer.distributed_sampler_kwargs if self.trainer is not None else None) or {}

    def train_dataloader(self):
        overfit = getattr(self.trainer, "overfit_batches", 0) > 0  # debug=overfit: the same batches every epoch
        return make_train_loader(self.train_set, self.batch_size, self.seed, self.drop_last, self._world(),
                                 lambda: batches_trained(self.trainer), repeat=overfit, **self._loader_kwargs())

    def val_dataloader(self):
        return make_eval_loader(self.val_set, self.eval_batch_size, self._world(), **self._loader_kwargs())

    def test_dataloader(self):
        return make_eval_loader(self.test_set, self.eval_batch_size, self._world(), **self._loader_kwargs())

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

    # -- what the model, the range test and prediction use ------------------------------------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> float normalised with the training-set mean/std."""
        mean = self.mean.to(images.device).view(1, -1, 1, 1)
        std = self.std.to(images.device).view(1, -1, 1, 1)
        return (images.float() / 255 - mean) / std

    def init_images(self, n: int = 5000) -> torch.Tensor:
        """The first ``n`` training images, normalised (for data-dependent initialisation)."""
        self.setup("fit")
        return self.normalize(self.train_set.images[:n])

    def steps_per_epoch(self) -> int:
        """Training batches per epoch on a single process (under DDP each rank gets 1/world of the images)."""
        n = len(self.train_set)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def checkpoint_metadata(self) -> dict:
        """What prediction needs besides the weights (plain types, saved in every checkpoint): the class names
        per head and the preprocessing (image size, resize mode, normalisation statistics)."""
        return {"vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
                "image_size": int(self.train_set.images.shape[-1]), "resize_mode": self.resize_mode,
                "mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    def state_dict(self) -> dict:
        """The data module's own resumable state: none. What it holds after :meth:`setup` is a pure function of
        its arguments, and the position in the epoch is the training loader's state (:class:`ResumableDataLoader`),
        which Lightning checkpoints by itself. The LR range test saves and restores this around its sweep. Saved
        is what the data was (:func:`data_fingerprint`), for a resume to compare."""
        if self.train_set is None:
            return {}
        return {"fingerprint": data_fingerprint(self.train_set, self.val_set, self.test_set)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to restore; a resume on data that differs from the checkpoint's (images added, removed or
        relabelled since) is said: its run no longer continues the one it resumes (nor replays its data order)."""
        saved = state_dict.get("fingerprint")
        now = None if self.train_set is None else data_fingerprint(self.train_set, self.val_set, self.test_set)
        if saved and now and saved != now:
            sizes = [f"{k} {saved.get(k)} -> {now[k]} images" for k in now if k != "digest" and saved.get(k) != now[k]]
            what = ", ".join(sizes) or "same split sizes, other images or labels"
            warnings.warn(f"resume: the data differs from the checkpoint's ({what}); the run goes on with the data as "
                          "it is now, not as it was when it was interrupted", stacklevel=2)




class TrainTestDataModule(TensorImageDataModule):
    """A source with a training and a test split in memory (CIFAR-10, synthetic images): it implements
    :meth:`load` (and optionally :meth:`load_validation`); ``val_fraction`` of the training split is held out by a
    seeded random split, else the source's own validation split is used, else none (then validation runs on the
    test split: the paper recipes' "train on all, test at the end")."""

    def load(self):
        """``(train_x, train_y, test_x, test_y, classes)``: uint8 images (N, C, H, W), labels (N,), class names."""
        raise NotImplementedError

    def load_validation(self):
        """A validation split that the data set has of its own, ``(images, labels)``, used when ``val_fraction`` is 0;
        None (the default): then validation runs on the test split."""
        return None

    def load_splits(self) -> Splits:
        train_x, train_y, test_x, test_y, classes = self.load()
        train, val = Split(train_x, train_y), None
        if self.val_fraction > 0:
            train, val = holdout(train, self.val_fraction, self.seed)
        elif (own := self.load_validation()) is not None:
            val = Split(*own)
        return Splits(train, val, Split(test_x, test_y), {"label": list(classes)})


def _check_options(batch_size, eval_batch_size, val_fraction, augment, flip, crop_padding, cutout,
                   num_workers) -> None:
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"data.batch_size must be a positive integer, got {batch_size!r}")
    if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size <= 0):
        raise ValueError(f"data.eval_batch_size must be a positive integer or null, got {eval_batch_size!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction!r}")
    if augment not in AUGMENTS:
        raise ValueError(f"data.augment: unknown value {augment!r}; choose one of {list(AUGMENTS)}")
    if flip not in FLIPS:
        raise ValueError(f"data.flip: unknown value {flip!r}; choose one of {list(FLIPS)} (or true / false)")
    if crop_padding < 0 or cutout < 0:
        raise ValueError("data.crop_padding and data.cutout must be >= 0")
    if num_workers < 0:
        raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")


def _check_batched_ops(scale, ratio, jitter) -> None:
    if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"data.resized_crop_scale must be null or [min, max] with 0 < min <= max <= 1, got {scale}")
    if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
        raise ValueError(f"data.resized_crop_ratio must be [min, max] with 0 < min <= max, got {ratio}")
    if not 0 <= jitter < 1:
        raise ValueError(f"data.color_jitter must be in [0, 1), got {jitter}")


def data_fingerprint(train: TensorImageDataset, val: TensorImageDataset, test: TensorImageDataset) -> dict:
    """The splits' sizes and a digest of the training labels and of up to 64 evenly spaced training images: what a
    resume compares (:meth:`TensorImageDataModule.load_state_dict`)."""
    digest = hashlib.sha256()
    labels = train.labels if isinstance(train.labels, Mapping) else {"label": train.labels}
    for name in sorted(labels):
        digest.update(name.encode() + labels[name].cpu().numpy().tobytes())
    digest.update(train.images[:: max(len(train) // 64, 1)].cpu().numpy().tobytes())
    return {"train": len(train), "val": len(val), "test": len(test), "digest": digest.hexdigest()[:16]}
