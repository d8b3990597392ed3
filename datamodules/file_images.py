"""Shared machinery of the DataModules that read your own image files (an image folder, a CSV).

A subclass lists its images in :meth:`FileImageDataModule.read_records`: absolute paths, integer labels per
attribute (head), the class names of every attribute (vocabularies), and, where the data says so, the split of
each image. Images without a given split are divided by a seeded split stratified on one attribute
(:mod:`datamodules.file_splits`). The images are decoded once (see :mod:`datamodules.image_cache`) in the order
train, val, test, so that with ``cache=mmap`` every split is a slice of the memory-mapped cache file, never a copy.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from datamodules.file_splits import assign_splits, check_training_classes, warn_missing_classes
from datamodules.image_cache import MAX_LISTED, load_or_decode, describe_bad, RESIZE_MODES
from datamodules.tensor_images import SPLITS, UNKNOWN_LABEL, Split, Splits, TensorImageDataModule


@dataclass
class Records:
    """What a file-based source lists (:meth:`FileImageDataModule.read_records`)."""
    paths: list[str]                    # absolute paths
    labels: dict[str, np.ndarray]       # head -> int64 (N,) indices into vocabularies[head]
    vocabularies: dict[str, list[str]]  # head -> class names
    split: np.ndarray | None            # (N,) of "train" / "val" / "test" / "" (unassigned), or None
    cache_dir: str                      # default cache folder (next to the data)


def vocabulary(values) -> list[str]:
    """Sorted class names: numerically when every value is an integer (CSV labels, class folders ``0 .. 10``),
    else as strings."""
    unique = set(values)
    try:
        return sorted(unique, key=int)
    except ValueError:
        return sorted(unique)


def relabel(rec: Records, known: Mapping[str, list[str]], where: str) -> Records:
    """``rec`` numbered by ``known`` class names (a trained model's, in its head order): the data must have the same
    heads, and every class it names must be a known one; it may lack some (a subset of the classes)."""
    if set(rec.vocabularies) != set(known):
        raise ValueError(f"{where}: the data's attributes {list(rec.vocabularies)} are not the model's {list(known)}; "
                         "evaluate on data with the checkpoint's heads")
    labels = {}
    for head, names in known.items():
        index = {name: i for i, name in enumerate(names)}
        unknown = [name for name in rec.vocabularies[head] if name not in index]
        if unknown:
            raise ValueError(f"{where}: class(es) {unknown[:MAX_LISTED]} of attribute {head!r} are not among the "
                             f"checkpoint's {list(names)}; the model cannot predict them (a subset of its classes "
                             "is fine)")
        table = np.asarray([index[name] for name in rec.vocabularies[head]] or [0], np.int64)
        y = rec.labels[head]
        labels[head] = np.where(y == UNKNOWN_LABEL, UNKNOWN_LABEL, table[np.clip(y, 0, None)])
    return dataclasses.replace(rec, labels=labels, vocabularies={head: list(names) for head, names in known.items()})


@dataclass
class DecodedSplits:
    """The decoded images of every split: {split: (uint8 images, their record indices)}, with the JSON file that
    caches the training split's channel statistics (None without a cache) and the files skipped as bad."""
    parts: dict[str, tuple[torch.Tensor, np.ndarray]]
    stats_cache: str | None
    bad_files: list[str]


class FileImageDataModule(TensorImageDataModule):
    """Base of :class:`ImageFolderDataModule` and :class:`CSVImageDataModule`: lists the files
    (:meth:`read_records`), splits and decodes them and gives :meth:`TensorImageDataModule.setup` the splits.

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
        known_classes: {head: class names} to number the labels by (``task=eval`` passes the checkpoint's): every
            class the data names must be among them, and it may lack some; default: the data's own classes.
        test_only: every image is a test image, whatever split the data gives it; nothing trains or validates
            (``task=eval`` on other data, ``eval_on=all``). A folder needs no ``train/`` then; needs ``norm_stats``.
        **kwargs: see :class:`TensorImageDataModule` (``val_fraction``: held out for validation when the data
            names no validation split).
    """

    source_key = "data"  # the config key that names the data, for error messages

    def __init__(self, image_size: int = 32, resize_mode: str = "crop", test_fraction: float = 0.0,
                 cache: str = "memory", cache_dir: str | None = None, decode_workers: int | None = None,
                 skip_bad_images: bool = False, albumentations: list | None = None,
                 known_classes: Mapping[str, list[str]] | None = None, test_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        if test_only and self.norm_stats is None:  # no training split to compute them from
            raise ValueError("test_only: the images are normalised with a trained model's statistics: give norm_stats")
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
        self.known_classes = None if known_classes is None else {h: list(v) for h, v in known_classes.items()}
        self.test_only = test_only
        self._warned: set[str] = set()

    def warn_once(self, message: str) -> None:
        """A warning about the files, given once: prepare_data, setup and ``heads`` each read them again."""
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, stacklevel=3)

    # -- subclass API ---------------------------------------------------------------------------------------------
    def read_records(self) -> Records:
        """The image files, their labels per head, the class names and any split the data gives."""
        raise NotImplementedError

    def records(self) -> Records:
        """:meth:`read_records`, numbered by ``known_classes`` where given."""
        rec = self.read_records()
        return rec if self.known_classes is None else relabel(rec, self.known_classes, self.source_key)

    def source_path(self) -> str:
        """The absolute path of the folder or file the images are listed in (``data.root``, ``data.csv_path``)."""
        raise NotImplementedError

    def checkpoint_metadata(self) -> dict:
        """The base class's, and where the data was (``source``): ``task=eval`` tells the training data from other
        data by it, whatever folder either run was started from."""
        return {**super().checkpoint_metadata(), "source": self.source_path()}

    def stratify_head(self, rec: Records) -> str:
        """The head the seeded split is stratified on (default: the first)."""
        return next(iter(rec.vocabularies))

    @property
    def heads(self) -> dict[str, int]:
        if not self.vocabularies:  # before setup: the class names of the listed files (setup sets the same)
            self.vocabularies = self.records().vocabularies
        return {name: len(v) for name, v in self.vocabularies.items()}

    def prepare_data(self) -> None:
        """Fails now on bad input (layout, columns, paths, images); with a cache, also decodes into it, once (rank 0
        under DDP), so that every rank's :meth:`setup` reads the cache file."""
        rec = self.records()
        if self.cache != "off":
            self.decode_splits(rec)

    def load_splits(self) -> Splits:
        """The decoded splits. Without validation images, validation runs on the test split (with a warning);
        without test images, the test split is the validation split. ``test_only``: every image in the test split."""
        rec = self.records()
        decoded = self.decode_splits(rec)
        split = {s: Split(x, self.labels_of(rec, idx), [rec.paths[i] for i in idx])
                 for s, (x, idx) in decoded.parts.items()}
        warn_missing_classes(rec, {s: idx for s, (_, idx) in decoded.parts.items() if s != "train"},
                             self.source_key)
        if self.test_only:
            return Splits(split["train"], None, split["test"], rec.vocabularies, None, decoded.bad_files)
        val, test = split["val"] if split["val"].paths else None, split["test"] if split["test"].paths else None
        if val is None:
            if self.val_fraction > 0:
                raise ValueError(f"data.val_fraction={self.val_fraction} holds out no image: the classes of "
                                 f"{self.stratify_head(rec)!r} are too small for it; raise it or add a validation "
                                 "split")
            if test is None:
                raise ValueError(f"{self.source_key}: no validation or test images: set data.val_fraction > 0 or add "
                                 "a validation split")
            warnings.warn("no validation split (data.val_fraction=0 and none in the data): validating on the "
                          "test split", stacklevel=2)
        elif test is None:
            warnings.warn("no test split (data.test_fraction=0 and none in the data): the test/ metrics are the "
                          "validation split's; set data.test_fraction (e.g. 0.1) for a held-out test score",
                          stacklevel=2)
        return Splits(split["train"], val, test, rec.vocabularies, decoded.stats_cache, decoded.bad_files)

    @staticmethod
    def labels_of(rec: Records, idx: np.ndarray):
        """The labels of records ``idx``: a tensor for the one head ``label``, else {head: tensor}."""
        ys = {h: torch.from_numpy(v[idx]) for h, v in rec.labels.items()}
        return ys[next(iter(ys))] if list(ys) == ["label"] else ys

    # -- decoding -------------------------------------------------------------------------------------------------
    def decode_splits(self, rec: Records) -> DecodedSplits:
        """Decodes (or reads from the cache) the images of :meth:`assign_splits`. The cache holds the files in
        record order, except with ``cache=mmap``: there it holds them in split order (a new seed or fraction
        writes a new file), so that every split is a slice of the memory map rather than a copy in memory."""
        splits = assign_splits(rec, (self.val_fraction, self.test_fraction), self.stratify_head(rec), self.seed,
                               self.test_only)
        split_order = np.concatenate([splits[s] for s in SPLITS])
        decode_order = split_order if self.cache == "mmap" else np.arange(len(rec.paths))
        paths = [rec.paths[i] for i in decode_order]
        cache_dir = self.cache_dir or rec.cache_dir
        decoded = load_or_decode(paths, self.image_size, self.resize_mode, self.cache,
                                 None if self.cache == "off" else cache_dir, self.decode_workers)
        bad_files = [paths[i] for i in sorted(decoded.bad)]
        if decoded.bad:
            text = describe_bad(paths, decoded.bad)
            if not self.skip_bad_images:
                raise ValueError(f"{self.source_key}: {text} are missing or do not decode; fix or remove them, or set "
                                 "data.skip_bad_images=true to skip them")
            self.warn_once(f"data.skip_bad_images=true: skipping {text}")
        ok = decoded.ok_mask()
        row_of = np.empty(len(rec.paths), np.int64)
        row_of[decode_order] = np.arange(len(decode_order))
        images, parts = torch.from_numpy(decoded.images), {}
        for s in SPLITS:
            rows = row_of[splits[s]]
            rows = rows[ok[rows]]
            contiguous = len(rows) > 0 and bool((np.diff(rows) == 1).all())
            parts[s] = (images[rows[0]:rows[-1] + 1] if contiguous else images[torch.from_numpy(rows)],
                        decode_order[rows])
        if not self.test_only:
            check_training_classes(rec, parts["train"][1], self.source_key)
        stats = None if decoded.key is None else os.path.join(
            cache_dir, f"{decoded.key}-{_digest(parts['train'][1])}.stats.json")
        return DecodedSplits(parts, stats, bad_files)

    def _albumentations(self, size: int):
        """The configured ``data.albumentations`` transforms, else the base class's pipeline."""
        if self.augment != "albumentations" or not self.albumentation_steps:
            return super()._albumentations(size)
        import albumentations as A
        from hydra.utils import instantiate

        # from train.py, Hydra has already built them (instantiate is recursive); from Python, they may be configs
        return A.Compose([instantiate(step) if isinstance(step, Mapping) else step
                          for step in self.albumentation_steps])


def _digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:12]
