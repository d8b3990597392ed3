"""CIFAR-10 from the standard ``cifar-10-batches-py`` pickles, read directly (no MD5 check, so copies work)."""
from __future__ import annotations

import os
import pickle
from urllib.parse import urlparse

import numpy as np
import torch

from datamodules.tensor_images import TrainTestDataModule

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"


def read_batch_file(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> (uint8 images (N, 3, 32, 32), int64 labels (N,)); clear errors for bad files."""
    try:
        with open(path, "rb") as f:
            record = pickle.load(f, encoding="latin1")
        data, labels = record["data"], record["labels"]
        images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(labels, dtype=np.int64)
    except Exception as e:  # pickle, key, reshape errors all mean the same thing to a user
        raise ValueError(f"data.root: CIFAR-10 batch file {path} is corrupt or not a CIFAR-10 batch "
                         f"({type(e).__name__}: {e}); delete it and set data.download=true, or lay out a fresh "
                         "copy") from e
    if len(images) != len(labels) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"data.root: CIFAR-10 batch file {path} has {len(images)} images but {len(labels)} "
                         "labels, or labels outside 0..9")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


class CIFAR10DataModule(TrainTestDataModule):
    """CIFAR-10 (Krizhevsky 2009): 50,000 training and 10,000 test images, 10 classes.

    Args:
        root: folder that holds (or will hold) ``cifar-10-batches-py``.
        download: download with torchvision when the files are absent.
        **kwargs: see :class:`TensorImageDataModule`.
    """

    def __init__(self, root: str = "data", download: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root, self.download = os.path.abspath(os.path.expanduser(str(root))), download

    @property
    def folder(self) -> str:
        return os.path.join(self.root, FOLDER)

    @property
    def heads(self) -> dict[str, int]:
        return {"label": 10}

    def missing_files(self) -> list[str]:
        return [f for f in TRAIN_FILES + TEST_FILES if not os.path.isfile(os.path.join(self.folder, f))]

    def prepare_data(self) -> None:
        if not self.missing_files():
            return
        if not self.download:
            raise FileNotFoundError(
                f"data.root: CIFAR-10 not found: looked for {', '.join(self.missing_files())} in {self.folder}. "
                "Set data.download=true to download it, or point data.root at the folder that contains "
                f"{FOLDER}/ (e.g. data.root=/path/to/data).")
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(URL, self.root, filename="cifar-10-python.tar.gz", md5=MD5)
        except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError; a bad MD5 a RuntimeError
            reason = getattr(err, "reason", None) or err
            raise FileNotFoundError(
                f"data.download: downloading CIFAR-10 from {urlparse(URL).hostname} failed ({reason}). Either point "
                f"data.root at a folder that holds {FOLDER}/ (e.g. data.root=/path/to/data data.download=false), or "
                f"run again with network access.") from None

    def check(self) -> None:
        """Fail now, before any training, if the files are missing (and not to be downloaded) or unreadable."""
        if self.missing_files() and not self.download:
            self.prepare_data()  # raises the explanatory error

    def load(self):
        self.prepare_data()
        parts = [read_batch_file(os.path.join(self.folder, f)) for f in TRAIN_FILES]
        train_x, train_y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        test_x, test_y = read_batch_file(os.path.join(self.folder, TEST_FILES[0]))
        meta = os.path.join(self.folder, "batches.meta")
        classes = [str(i) for i in range(10)]
        if os.path.isfile(meta):
            with open(meta, "rb") as f:
                classes = list(pickle.load(f, encoding="latin1")["label_names"])
        return train_x, train_y, test_x, test_y, classes
