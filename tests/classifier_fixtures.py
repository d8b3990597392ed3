"""Helpers shared by the classifier tests (not a test module): a logger that records what it is given, a tiny CPU
trainer, an SGD factory, label-smoothed cross-entropy and airbench's TTA written out, a learnable two-head data set."""
from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers.logger import Logger
from torch.utils.data import Dataset

from lightning_modules.classifier import Classifier


#: the classifier tests' pytestmark: warnings of tiny CPU runs that say nothing about the code under test
QUIET = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*number of training batches.*"),
]


class RecordingLogger(Logger):
    def __init__(self):
        super().__init__()
        self.records: list[tuple[int | None, dict]] = []

    @property
    def name(self):
        return "rec"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.records.append((step, dict(metrics)))

    @property
    def names(self) -> set[str]:
        return {k for _, m in self.records for k in m}


def make_trainer(tmp_path, logger=None, **kwargs) -> pl.Trainer:
    defaults = dict(accelerator="cpu", devices=1, max_epochs=1, logger=logger if logger is not None else False,
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir=str(tmp_path))
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def sgd(**kw):
    return functools.partial(torch.optim.SGD, **{"lr": 0.05, "momentum": 0.9, **kw})


def smoothed_ce(logits: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Label-smoothed cross-entropy written out: target (1 - eps) one-hot + eps / K uniform."""
    k = logits.shape[1]
    logp = logits.double().log_softmax(1)
    target = torch.full_like(logp, eps / k)
    target[torch.arange(len(y)), y] += 1 - eps
    return -(target * logp).sum(1).mean()


class MultiHeadSet(Dataset):
    def __init__(self, x, ya, yb):
        self.x, self.ya, self.yb = x, ya, yb

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {"a": self.ya[i], "b": self.yb[i]}


def multihead_data(n, seed, size=8):
    g = torch.Generator().manual_seed(seed)
    ya = torch.randint(3, (n,), generator=g)
    yb = torch.randint(2, (n,), generator=g)
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    x[:, 0] += ya.view(-1, 1, 1).float()  # learnable: channel 0 encodes head a, channel 1 encodes head b
    x[:, 1] += 2 * yb.view(-1, 1, 1).float()
    return x, ya, yb


def shift(x, dy, dx):
    """x shifted by (dy, dx) with reflect boundaries written out by index: out[i] = x[reflect(i + d)]."""
    def idx(n, d):
        i = torch.arange(n) + d
        i = torch.where(i < 0, -i, i)
        return torch.where(i > n - 1, 2 * (n - 1) - i, i)
    return x[:, :, idx(x.shape[2], dy)][:, :, :, idx(x.shape[3], dx)]


def expected_tta_logits(model: Classifier, x: torch.Tensor, level: int) -> dict[str, torch.Tensor]:
    """airbench's infer_mirror / infer_mirror_translate composed from plain logits."""
    def mirror(v):
        a, b = model.logits(v), model.logits(v.flip(-1))
        return {k: 0.5 * a[k] + 0.5 * b[k] for k in a}
    if level == 1:
        return mirror(x)
    plain = mirror(x)
    up_left, down_right = mirror(shift(x, -1, -1)), mirror(shift(x, 1, 1))
    return {k: 0.5 * plain[k] + 0.25 * (up_left[k] + down_right[k]) for k in plain}


# -- construction errors --------------------------------------------------------------------------------------------
