"""Tiny models, data and state-capture helpers shared by the range-test tests (not a test module)."""
from __future__ import annotations

import copy
import random

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from callbacks.range_test.loss import LRRangeTest


# ----------------------------------------------------------------------------- tiny model and data
def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(123))
    return TensorDataset(x, (x @ w).argmax(1))


class TinyDM(pl.LightningDataModule):
    """Shuffled train loader; training augmentation (noise from the global torch, numpy and python RNGs) applied
    after transfer, as the project's datamodules do."""

    def __init__(self, n_train: int = 96, n_val: int = 32, batch_size: int = 8):
        super().__init__()
        self.train_ds, self.val_ds, self.batch_size = dataset(n_train, 0), dataset(n_val, 1), batch_size
        self.plain_batches = 0  # batches transferred without augmentation (not training)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=self.batch_size)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        if self.trainer is not None and self.trainer.training:
            x = x + 0.1 * torch.randn_like(x) + 0.01 * float(np.random.randn()) + 0.01 * random.random()
        else:
            self.plain_batches += 1
        return x, y


class TinyNet(pl.LightningModule):
    def __init__(self, opt: str = "sgd", lr: float = 0.05, nan_loss: bool = False):
        super().__init__()
        self.opt, self.lr, self.nan_loss = opt, lr, nan_loss
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
        self.first_batch = None
        self.lr_trace: list = []  # (group lrs) at every loss evaluation
        self.train_lrs: list = []

    def compute_loss(self, batch):
        if self.trainer is not None and self.trainer.optimizers:
            self.lr_trace.append([g["lr"] for g in self.trainer.optimizers[0].param_groups])
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        return loss * float("nan") if self.nan_loss else loss

    def training_step(self, batch, batch_idx):
        if self.first_batch is None:
            self.first_batch = [t.clone() for t in batch]
        self.train_lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        loss = self.compute_loss(batch)
        self.log("train/loss", loss)
        return loss

    def accuracy_counts(self, batch):
        x, y = batch
        return (self.net(x).argmax(1) == y).sum(), y.numel()

    def validation_step(self, batch, batch_idx):
        c, n = self.accuracy_counts(batch)
        self.log("val/acc", c / n)

    def configure_optimizers(self):
        groups = [
            {"params": [p for n, p in self.named_parameters() if not n.startswith("net.4")]},
            {"params": list(self.net[4].parameters()), "lr_scale": 2.0},
        ]
        if self.opt == "adam":
            return torch.optim.Adam(groups, lr=self.lr * 0.1, weight_decay=1e-4)
        if self.opt == "adagrad":
            return torch.optim.Adagrad(groups, lr=self.lr)
        return torch.optim.SGD(groups, lr=self.lr, momentum=0.9, weight_decay=5e-4)


class Regression(pl.LightningModule):
    """Least squares with plain SGD: diverges for lr > 2 / lambda_max, a clean blow-up for the stop rule."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)
        self.calls = 0

    def compute_loss(self, batch):
        self.calls += 1
        x, y = batch
        return F.mse_loss(self.lin(x).squeeze(1), y.float())

    def training_step(self, batch, batch_idx):
        return self.compute_loss(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class SweepThenTrain(LRRangeTest):
    """Runs the sweep machinery at train start but lets training continue (the phase itself stops the fit)."""

    def on_train_start(self, trainer, pl_module):
        self.run(trainer, pl_module)


class Snap(pl.Callback):
    """Records model/optimizer/scaler/RNG state at on_train_start (position in the callback list matters)."""

    def __init__(self):
        self.state = None

    def on_train_start(self, trainer, pl_module):
        self.state = capture(trainer, pl_module)


def capture(trainer, pl_module):
    opt = trainer.optimizers[0]
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    return {
        "model": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
        "opt_state": copy.deepcopy(opt.state_dict()),
        "scaler": None if scaler is None else copy.deepcopy(scaler.state_dict()),
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.get_state(),
        "py_rng": random.getstate(),
        "training": [m.training for m in pl_module.modules()],
        "grads": [None if p.grad is None else p.grad.clone() for p in pl_module.parameters()],
    }


def assert_tensors_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_tensors_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_tensors_equal(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    else:
        assert a == b


def assert_same_state(s1, s2):
    assert_tensors_equal(s1["model"], s2["model"])
    assert_tensors_equal(s1["opt_state"], s2["opt_state"])
    assert s1["scaler"] == s2["scaler"]
    assert torch.equal(s1["torch_rng"], s2["torch_rng"])
    assert_tensors_equal(list(s1["np_rng"]), list(s2["np_rng"]))
    assert s1["py_rng"] == s2["py_rng"]
    assert s1["training"] == s2["training"]
    assert [g is None for g in s1["grads"]] == [g is None for g in s2["grads"]]
    assert_tensors_equal([g for g in s1["grads"] if g is not None], [g for g in s2["grads"] if g is not None])


def trainer(tmp_path, callbacks, **kw):
    args = dict(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        default_root_dir=str(tmp_path), deterministic=True,
    )
    args.update(kw)
    return pl.Trainer(callbacks=callbacks, **args)


def fit(tmp_path, model_seed=0, opt="sgd", callbacks=(), dm=None, **kw):
    pl.seed_everything(model_seed, verbose=False)
    model = TinyNet(opt)
    tr = trainer(tmp_path, list(callbacks), **kw)
    tr.fit(model, datamodule=dm or TinyDM())
    return tr, model
