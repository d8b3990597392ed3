"""Your own images in class folders: ``ROOT/train/<class>/*`` and optionally ``ROOT/val/<class>/*``,
``ROOT/test/<class>/*`` (JPEG, PNG, BMP, WebP, TIFF, GIF); or, with no ``train/``, ``ROOT/<class>/*`` (torchvision's
``ImageFolder`` layout), all of it training images. Without a val or test folder, a seeded split of the training
images, stratified by class, holds out ``val_fraction`` and ``test_fraction`` of every class."""
from __future__ import annotations

import os

import numpy as np

from datamodules.file_images import FileImageDataModule, Records, vocabulary
from datamodules.image_cache import IMAGE_EXTENSIONS, MAX_LISTED, is_image_file
from datamodules.tensor_images import SPLIT_NAMES_SAID, split_of

LAYOUT = "ROOT/train/<class>/<images> (optionally ROOT/val/, ROOT/test/)"


def list_class_folder(folder: str) -> tuple[list[str], list[str]]:
    """(image files, other non-hidden files) below ``folder``, recursively, sorted."""
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            (images if is_image_file(name) else others).append(os.path.join(dirpath, name))
    return images, others


class ImageFolderDataModule(FileImageDataModule):
    """One head, ``label``, whose classes are the sub-folders of ``ROOT/train``.

    Args:
        root: the data folder (holding ``train/`` and optionally ``val/`` and ``test/``).
        **kwargs: see :class:`FileImageDataModule` and :class:`TensorImageDataModule`.
    """

    source_key = "data.root"

    def __init__(self, root: str, **kwargs):
        super().__init__(**kwargs)
        self.root = os.path.abspath(os.path.expanduser(str(root)))

    def split_dirs(self) -> dict[str, str]:
        """The folder of each split there is under ROOT (``train/``, ``val/``, ``test/``, or another name of
        SPLIT_NAMES such as ``valid/``), or ROOT itself as the training folder when none of its folders names a
        split (class folders; a ``val/`` or ``test/`` without ``train/`` would mean a missing ``train/``)."""
        if not os.path.isdir(self.root):
            what = "is a file, not a folder" if os.path.exists(self.root) else "does not exist"
            raise FileNotFoundError(f"data.root: {self.root} {what}; expected {LAYOUT} or ROOT/<class>/<images>")
        folders = sorted(d for d in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, d))
                         and not d.startswith("."))
        named: dict[str, list[str]] = {}
        for folder in folders:
            split = split_of(folder)
            if split is not None:
                named.setdefault(split, []).append(folder)
        if not named:
            if folders:
                return {"train": self.root}
            raise FileNotFoundError(f"data.root: {self.root} has no folders; expected {LAYOUT} or "
                                    "ROOT/<class>/<images>")
        for split, names in named.items():
            if len(names) > 1:
                raise ValueError(f"data.root: {self.root} has {len(names)} folders for the {split} split "
                                 f"({', '.join(names)}); keep one")
        found = ", ".join(names[0] + "/" for names in named.values())
        if "train" not in named and not self.test_only:
            raise FileNotFoundError(f"data.root: {os.path.join(self.root, 'train')} does not exist (found "
                                    f"{found}); expected {LAYOUT} with data.root={self.root}")
        others = [f for f in folders if not any(f in names for names in named.values())]
        if others:
            self.warn_once(f"data.root: ignoring folder(s) {others[:MAX_LISTED]} beside "
                           f"{found}: not a split (allowed, any case: {SPLIT_NAMES_SAID})")
        return {split: os.path.join(self.root, names[0]) for split, names in named.items()}

    def source_path(self) -> str:
        return self.root

    def read_records(self) -> Records:
        dirs = self.split_dirs()
        found = {s: sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
                           and not d.startswith(".")) for s, folder in dirs.items()}
        # the training folder names the classes; images that are all tested (test_only) name them in any split
        train_dir = dirs.get("train", self.root)
        classes = vocabulary(set().union(*found.values()) if self.test_only else found["train"])
        if not classes:
            raise ValueError(f"data.root: {train_dir} has no class folders; expected train/<class>/<images>")
        if len(classes) == 1 and self.known_classes is None:  # the classifier's check would name model.heads
            raise ValueError(f"data.root: {train_dir} has one class folder ({classes[0]}); a classifier needs at "
                             "least 2, one folder of images per class")
        index = {c: i for i, c in enumerate(classes)}
        paths, labels, split, ignored = [], [], [], []
        for s, split_dir in dirs.items():
            for c in sorted(d for d in os.listdir(split_dir) if not d.startswith(".")):
                folder = os.path.join(split_dir, c)
                if not os.path.isdir(folder):
                    ignored.append(folder)
                    continue
                if c not in index:  # (test_only: every class folder is in the index)
                    raise ValueError(f"data.root: class folder {folder} has no counterpart in {train_dir}, so "
                                     f"class {c!r} would have no training images; training classes: {classes}")
                images, others = list_class_folder(folder)
                if not images:
                    raise ValueError(f"data.root: class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
                ignored += others
                paths += images
                labels += [index[c]] * len(images)
                split += [s if s != "train" else ""] * len(images)
        if ignored:
            self.warn_once(f"data.root: ignoring {len(ignored)} file(s) that are not images "
                           f"({', '.join(IMAGE_EXTENSIONS)}), e.g. {ignored[:3]}")
        return Records(paths=paths, labels={"label": np.asarray(labels, np.int64)},
                       vocabularies={"label": classes}, split=np.asarray(split, dtype=object),
                       cache_dir=os.path.join(self.root, ".image_cache"))
