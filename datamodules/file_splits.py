"""Which of one's own images train, validate and test (:class:`~datamodules.file_images.FileImageDataModule`): the
split the data gives where it gives one, else a seeded split stratified by class on one attribute; and what a split
lacks (a class with no training image stops the run; one missing from validation or test is a warning)."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch

from datamodules.image_cache import MAX_LISTED
from datamodules.tensor_images import class_counts

if TYPE_CHECKING:  # only for the annotations: file_images imports this module
    from datamodules.file_images import Records

__all__ = ["stratified_split", "assign_splits", "absent_classes", "check_training_classes",
           "warn_missing_classes"]


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


def assign_splits(rec: Records, fractions: tuple[float, float], stratify_head: str, seed: int,
                  test_only: bool = False) -> dict[str, np.ndarray]:
    """Indices of train/val/test: the given split where there is one, else a split stratified on ``stratify_head``
    that holds out ``fractions`` (validation, test) of each class; ``test_only``: every image is a test image."""
    if test_only:
        return {"train": np.zeros(0, np.int64), "val": np.zeros(0, np.int64), "test": np.arange(len(rec.paths))}
    split = rec.split if rec.split is not None else np.full(len(rec.paths), "", dtype=object)
    free = np.flatnonzero((split == "") | (split == "train"))
    fractions = (0.0 if (split == "val").any() else fractions[0], 0.0 if (split == "test").any() else fractions[1])
    labels = rec.labels[stratify_head][free]
    val_part, test_part, train_part = stratified_split(labels, fractions, seed)
    return {"train": free[train_part],
            "val": np.sort(np.concatenate([np.flatnonzero(split == "val"), free[val_part]])),
            "test": np.sort(np.concatenate([np.flatnonzero(split == "test"), free[test_part]]))}


def absent_classes(rec: Records, idx: np.ndarray) -> dict[str, list[str]]:
    """{head: the class names with no image among records ``idx``} for the heads that lack some."""
    labels = {h: torch.from_numpy(v[idx]) for h, v in rec.labels.items()}
    absent = {head: [rec.vocabularies[head][c] for c, n in enumerate(counts) if n == 0]
              for head, counts in class_counts(labels, rec.vocabularies).items()}
    return {head: names for head, names in absent.items() if names}


def check_training_classes(rec: Records, train_idx: np.ndarray, source_key: str) -> None:
    """Refuses a split that leaves a class of some head without training images (``source_key``: the config key
    the error names)."""
    for head, absent in absent_classes(rec, train_idx).items():
        raise ValueError(f"{source_key}: the split leaves class(es) {absent} of attribute {head!r} "
                         "without training images; add images, lower data.val_fraction/data.test_fraction "
                         "or change the split")


def warn_missing_classes(rec: Records, parts: dict[str, np.ndarray], source_key: str) -> None:
    """Warns where a validation or test split (record indices ``parts``) has no image of some class: its
    accuracy then covers the other classes alone, and a checkpoint chosen on it never saw that class judged."""
    for name, idx in parts.items():
        for head, absent in (absent_classes(rec, idx).items() if len(idx) else ()):
            k = len(rec.vocabularies[head])
            warnings.warn(f"{source_key}: the {name} split has no images of class(es) "
                          f"{absent[:MAX_LISTED]} of attribute {head!r}; its accuracy covers the other "
                          f"{k - len(absent)} of {k} classes (its macro F1 counts an absent class only where the "
                          "model predicts it, with F1 0, as scikit-learn's does)", stacklevel=2)
