"""Your own images in class folders: ``ROOT/train/<class>/*`` and optionally ``ROOT/val/<class>/*``,
``ROOT/test/<class>/*`` (JPEG, PNG, BMP, WebP, TIFF, GIF); or, with no ``train/``, ``ROOT/<class>/*`` (torchvision's
``ImageFolder`` layout), all of it training images. Without a val or test folder, a seeded split of the training
images, stratified by class, holds out ``val_fraction`` and ``test_fraction`` of every class."""
from __future__ import annotations

import os

import numpy as np

from datamodules.file_images import FileImageDataModule, Records
from datamodules.image_cache import IMAGE_EXTENSIONS, is_image_file


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
        """The folder of each split there is: ``{train, val, test}`` under ROOT, or ROOT itself as the training
        folder when it has no ``train/`` but class folders (and no ``val/`` or ``test/``, which would mean a
        missing ``train/``)."""
        if not os.path.isdir(self.root):
            what = "is a file, not a folder" if os.path.exists(self.root) else "does not exist"
            raise FileNotFoundError(f"data.root: {self.root} {what}; expected ROOT/train/<class>/<images> "
                                    "(optionally ROOT/val/, ROOT/test/) or ROOT/<class>/<images>")
        train_dir = os.path.join(self.root, "train")
        if not os.path.isdir(train_dir):
            folders = {d for d in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, d))
                       and not d.startswith(".")}
            if folders and not {"val", "test"} & folders:
                return {"train": self.root}
            raise FileNotFoundError(f"data.root: {train_dir} does not exist; expected ROOT/train/<class>/<images> "
                                    f"(and optionally ROOT/val/, ROOT/test/) with data.root={self.root}")
        return {s: os.path.join(self.root, s) for s in ("train", "val", "test")
                if os.path.isdir(os.path.join(self.root, s))}

    def read_records(self) -> Records:
        dirs = self.split_dirs()
        train_dir = dirs["train"]
        classes = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d))
                         and not d.startswith("."))
        if not classes:
            raise ValueError(f"data.root: {train_dir} has no class folders; expected train/<class>/<images>")
        if len(classes) == 1:  # the classifier's own check would name model.heads, not the data
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
                if c not in index:
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
