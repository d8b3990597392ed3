"""Shared machinery of the DataModules that read your own image files (an image folder, a CSV).

A subclass lists its images in :meth:`FileImageDataModule.read_records`: absolute paths, integer labels per
attribute (head), the class names of every attribute (vocabularies), and, where the data says so, the split of
each image. Images without a given split are divided by a seeded split stratified on one attribute. The images
are decoded once (see :mod:`datamodules.image_cache`) in the order train, val, test, so that with
``cache=mmap`` every split is a slice of the memory-mapped cache file, never a copy.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from datamodules.image_cache import load_or_decode, describe_bad, RESIZE_MODES
from datamodules.tensor_images import TensorImageDataModule, TensorImageDataset

SPLITS = ("train", "val", "test")


@dataclass
class Records:
    paths: list[str]                    # absolute paths
    labels: dict[str, np.ndarray]       # head -> int64 (N,) indices into vocabularies[head]
    vocabularies: dict[str, list[str]]  # head -> class names
    split: np.ndarray | None            # (N,) of "train" / "val" / "test" / "" (unassigned), or None
    cache_dir: str                      # default cache folder (next to the data)


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split indices 0..N-1 into len(fractions)+1 parts: part k takes round(fraction_k x n_c) images of every
    class c (a class with n_c >= 2 always keeps one image in the last part, the training part); the rest goes to
    the last part. Deterministic for a seed; every part is sorted."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for k, frac in enumerate(fractions):
            take = min(int(round(frac * len(idx))), max(0, len(idx) - 1 - start))
            parts[k].append(idx[start:start + take])
            start += take
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


class FileImageDataModule(TensorImageDataModule):
    """Base of :class:`ImageFolderDataModule` and :class:`CSVImageDataModule`.

    Args:
        image_size: side of the square images the files are resized to.
        resize_mode: ``crop`` (keep aspect, centre crop) or ``resize`` (stretch).
        test_fraction: fraction of each class held out for testing when the data names no test split.
        cache: ``memory``, ``mmap`` (memory-mapped cache file, for sets larger than memory) or ``off``.
        cache_dir: folder of the cache files (default: ``.image_cache`` next to the data).
        decode_workers: processes that decode (default: up to 8 CPU cores; 0: in this process).
        skip_bad_images: skip missing or undecodable files with a warning instead of failing.
        albumentations: list of albumentations transforms (Hydra ``_target_`` configs) run per sample when
            ``augment=albumentations`` (default: the crop/flip/cutout pipeline of the base class).
        **kwargs: see :class:`TensorImageDataModule` (``val_fraction``: held out for validation when the data
            names no validation split).
    """

    source_key = "data"  # the config key that names the data, for error messages

    def __init__(self, image_size: int = 32, resize_mode: str = "crop", test_fraction: float = 0.0,
                 cache: str = "memory", cache_dir: str | None = None, decode_workers: int | None = None,
                 skip_bad_images: bool = False, albumentations: list | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"data.image_size must be an integer >= 8, got {image_size!r}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"data.resize_mode: unknown value {resize_mode!r}; choose one of {list(RESIZE_MODES)}")
        if not 0.0 <= test_fraction < 1.0 or self.val_fraction + test_fraction >= 1.0:
            raise ValueError(f"data.test_fraction must be in [0, 1) with val_fraction + test_fraction < 1, got "
                             f"{test_fraction} (val_fraction {self.val_fraction})")
        if albumentations and self.augment != "albumentations":
            raise ValueError("data.albumentations is set but data.augment is "
                             f"{self.augment!r}; set data.augment=albumentations to use it")
        self.image_size, self.resize_mode, self.test_fraction = image_size, resize_mode, test_fraction
        self.cache, self.cache_dir, self.decode_workers = cache, cache_dir, decode_workers
        self.skip_bad_images, self.albumentation_steps = skip_bad_images, albumentations
        self.vocabularies: dict[str, list[str]] = {}
        self.class_counts: dict[str, list[int]] = {}
        self.bad_files: list[str] = []                    # skipped files (data.skip_bad_images=true)
        self.split_paths: dict[str, list[str]] = {}       # split -> image paths, after setup
        self.stats_key: str | None = None

    # -- subclass API ---------------------------------------------------------------------------------------------
    def read_records(self) -> Records:
        raise NotImplementedError

    @property
    def heads(self) -> dict[str, int]:
        if not self.vocabularies:
            self.vocabularies = self.read_records().vocabularies
        return {name: len(v) for name, v in self.vocabularies.items()}

    def checkpoint_metadata(self) -> dict:
        """What prediction needs besides the weights: vocabularies and preprocessing (plain types)."""
        return {"vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
                "image_size": self.image_size, "resize_mode": self.resize_mode,
                "mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    def prepare_data(self) -> None:
        """Fails now on bad input (layout, columns, paths, images); with a cache, also decodes into it, once (rank 0
        under DDP), so that every rank's :meth:`setup` reads the cache file."""
        rec = self.read_records()
        if self.cache != "off":
            self.load_splits(rec, self.assign_splits(rec, self.stratify_head(rec)), self.source_key)

    # -- splits ---------------------------------------------------------------------------------------------------
    def assign_splits(self, rec: Records, stratify_on: str) -> dict[str, np.ndarray]:
        """Indices of train/val/test: the given split where there is one, else a stratified split."""
        split = rec.split if rec.split is not None else np.full(len(rec.paths), "", dtype=object)
        free = np.flatnonzero((split == "") | (split == "train"))
        fractions = (0.0 if (split == "val").any() else self.val_fraction,
                     0.0 if (split == "test").any() else self.test_fraction)
        val_part, test_part, train_part = stratified_split(rec.labels[stratify_on][free], fractions, self.seed)
        out = {"train": free[train_part],
               "val": np.sort(np.concatenate([np.flatnonzero(split == "val"), free[val_part]])),
               "test": np.sort(np.concatenate([np.flatnonzero(split == "test"), free[test_part]]))}
        return out

    def check_training_classes(self, rec: Records, train_idx: np.ndarray, where: str) -> None:
        for head, vocab in rec.vocabularies.items():
            counts = np.bincount(rec.labels[head][train_idx], minlength=len(vocab))
            absent = [vocab[c] for c in np.flatnonzero(counts == 0)]
            if absent:
                raise ValueError(f"{where}: the split leaves class(es) {absent} of attribute {head!r} without "
                                 "training images; add images, lower data.val_fraction/data.test_fraction or "
                                 "change the split")
            self.class_counts[head] = counts.tolist()

    # -- loading --------------------------------------------------------------------------------------------------
    def load_splits(self, rec: Records, splits: dict[str, np.ndarray], where: str):
        """{split: (uint8 images, record indices)}. The cache holds the files in record order, except with
        ``cache=mmap``: there it holds them in split order (a new seed or fraction writes a new file), so that
        every split is a slice of the memory map rather than a copy in memory."""
        split_order = np.concatenate([splits[s] for s in SPLITS])
        decode_order = split_order if self.cache == "mmap" else np.arange(len(rec.paths))
        paths = [rec.paths[i] for i in decode_order]
        decoded = load_or_decode(paths, self.image_size, self.resize_mode, self.cache,
                                 None if self.cache == "off" else (self.cache_dir or rec.cache_dir),
                                 self.decode_workers)
        if decoded.bad:
            text = describe_bad(paths, decoded.bad)
            self.bad_files = [paths[i] for i in sorted(decoded.bad)]
            if not self.skip_bad_images:
                raise ValueError(f"{where}: {text} are missing or do not decode; fix or remove them, or set "
                                 "data.skip_bad_images=true to skip them")
            warnings.warn(f"data.skip_bad_images=true: skipping {text}", stacklevel=2)
        ok = decoded.ok_mask()
        row_of = np.empty(len(rec.paths), np.int64)
        row_of[decode_order] = np.arange(len(decode_order))
        images, out = torch.from_numpy(decoded.images), {}
        for s in SPLITS:
            rows = row_of[splits[s]]
            rows = rows[ok[rows]]
            contiguous = len(rows) > 0 and bool((np.diff(rows) == 1).all())
            x = images[rows[0]:rows[-1] + 1] if contiguous else images[torch.from_numpy(rows)]
            out[s] = (x, decode_order[rows])
        self.check_training_classes(rec, out["train"][1], where)
        self.stats_key = None if decoded.key is None else f"{decoded.key}-{_digest(out['train'][1])}"
        return out

    def _labels(self, rec: Records, idx: np.ndarray):
        ys = {h: torch.from_numpy(v[idx]) for h, v in rec.labels.items()}
        return ys[next(iter(ys))] if list(ys) == ["label"] else ys

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        rec = self.read_records()
        self.vocabularies = rec.vocabularies
        self.classes = rec.vocabularies[next(iter(rec.vocabularies))]
        where = self.source_key
        parts = self.load_splits(rec, self.assign_splits(rec, self.stratify_head(rec)), where)
        (train_x, train_i), (val_x, val_i), (test_x, test_i) = (parts[s] for s in SPLITS)
        if len(val_i) == 0:
            if self.val_fraction > 0:
                raise ValueError(f"data.val_fraction={self.val_fraction} holds out no image: the classes of "
                                 f"{self.stratify_head(rec)!r} are too small for it; raise it or add a validation split")
            if len(test_i) == 0:
                raise ValueError(f"{where}: no validation or test images: set data.val_fraction > 0 or add a "
                                 "validation split")
            warnings.warn("no validation split (data.val_fraction=0 and none in the data): validating on the "
                          "test split", stacklevel=2)
            val_x, val_i = test_x, test_i
        if len(test_i) == 0:
            test_x, test_i = val_x, val_i  # no test split: trainer.test reports the validation images
        self.mean, self.std = self.channel_stats(train_x, rec.cache_dir)
        self.train_set = TensorImageDataset(train_x, self._labels(rec, train_i), self._albumentations(self.image_size))
        self.val_set = TensorImageDataset(val_x, self._labels(rec, val_i))
        self.test_set = TensorImageDataset(test_x, self._labels(rec, test_i))
        self.split_paths = {s: [rec.paths[i] for i in parts[s][1]] for s in SPLITS}
        if len(self.train_set) < self.batch_size and self.drop_last:
            raise ValueError(f"data.batch_size={self.batch_size} is larger than the {len(self.train_set)} "
                             "training images; lower it or set data.drop_last=false")

    def stratify_head(self, rec: Records) -> str:
        return next(iter(rec.vocabularies))

    def load(self):
        self.setup("fit")
        return (self.train_set.images, self.train_set.labels, self.test_set.images, self.test_set.labels,
                self.classes)

    # -- normalisation statistics ---------------------------------------------------------------------------------
    def channel_stats(self, train_x: torch.Tensor, default_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean/std of the training images in [0, 1], computed in chunks and cached beside the images."""
        path = None
        if self.stats_key is not None:
            path = os.path.join(self.cache_dir or default_dir, f"{self.stats_key}.stats.json")
            if os.path.isfile(path):
                with open(path) as f:
                    stats = json.load(f)
                return torch.tensor(stats["mean"]), torch.tensor(stats["std"])
        total = torch.zeros(train_x.shape[1], dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        for start in range(0, len(train_x), 4096):
            chunk = train_x[start:start + 4096].double() / 255
            total += chunk.sum(dim=(0, 2, 3))
            total_sq += (chunk ** 2).sum(dim=(0, 2, 3))
        count = train_x.shape[0] * train_x.shape[2] * train_x.shape[3]
        mean = total / count
        std = ((total_sq - count * mean ** 2) / max(1, count - 1)).clamp_min(1e-12).sqrt()
        if path is not None:
            with open(path, "w") as f:
                json.dump({"mean": mean.tolist(), "std": std.tolist()}, f)
        return mean.float(), std.float()

    def _albumentations(self, size: int):
        if self.augment != "albumentations" or not self.albumentation_steps:
            return super()._albumentations(size)
        import albumentations as A
        from hydra.utils import instantiate

        return A.Compose([instantiate(step) for step in self.albumentation_steps])


def _digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:12]
