"""A tiny training set-up shared by the LR-schedule tests (not a test module): a linear classifier whose steps
record the LR and momentum the optimizer holds, a resumable loader, trainers, and the oracles' helpers."""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn

from callbacks.schedules import shapes as schedules
from callbacks.schedules.lr_schedule import LRSchedule


def schedule_callback(fn):
    def make(plot=True, **shape):
        return LRSchedule(functools.partial(fn, **shape), plot=plot)
    return make


OneCycle, Cyclic = schedule_callback(schedules.one_cycle), schedule_callback(schedules.cyclic)
Piecewise, Warmup = schedule_callback(schedules.piecewise), schedule_callback(schedules.warmup)

REPO = Path(__file__).resolve().parents[1]
N_BATCHES, BATCH, EPOCHS = 8, 4, 3
REL = 1e-6

# --------------------------------------------------------------------------- tiny training set-up
def fixed_batches(n=N_BATCHES, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * BATCH, 4, generator=g)
    y = torch.randint(0, 3, (n * BATCH,), generator=g)
    return [(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]) for i in range(n)]


class ResumableLoader:
    """Fixed batches in a fixed order, stateful like torchdata's ``StatefulDataLoader``.

    Its state is how many batches of the current epoch training has consumed, so a mid-epoch resume continues
    with the next batch (with a plain loader Lightning restarts the epoch's data, and no schedule could give
    the same weights).
    """

    def __init__(self, batches):
        self.batches, self.consumed, self._skip = batches, 0, 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        skip, self._skip = self._skip, 0
        yield from self.batches[skip:]

    def state_dict(self):
        return {"consumed": self.consumed % len(self.batches)}

    def load_state_dict(self, state):
        self._skip = self.consumed = state["consumed"]


def momentum_of(group):
    if "betas" in group:
        return group["betas"][0]
    return group.get("momentum")


class TinyModule(pl.LightningModule):
    """Linear classifier; records (global_step, [(lr, momentum) per group]) as the optimizer holds them."""

    def __init__(self, optimizer="sgd", momentum=0.9, lr_scales=(1.0, 2.0), n_batches=N_BATCHES):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(4, 3)
        self.loader = ResumableLoader(fixed_batches(n_batches))
        self.optimizer_name, self.momentum, self.lr_scales = optimizer, momentum, lr_scales
        self.records = []

    def train_dataloader(self):
        return self.loader

    def training_step(self, batch, batch_idx):
        self.loader.consumed = batch_idx + 1
        groups = self.trainer.optimizers[0].param_groups
        self.records.append((self.trainer.global_step, [(g["lr"], momentum_of(g)) for g in groups]))
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        w, b = self.net.weight, self.net.bias
        params = [[w, b]] if len(self.lr_scales) == 1 else [[w], [b]]
        groups = [{"params": p, "lr_scale": s} for p, s in zip(params, self.lr_scales)]
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(groups, lr=0.1, momentum=self.momentum)
        if self.optimizer_name == "adam":
            return torch.optim.Adam(groups, lr=1e-3)
        return torch.optim.Adagrad(groups, lr=0.1)


def make_trainer(root, callbacks, acc=1, epochs=EPOCHS, logger=False):
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, accumulate_grad_batches=acc, logger=logger,
        callbacks=callbacks, enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1, default_root_dir=str(root),
        deterministic=True, num_sanity_val_steps=0,
    )


def fit(root, callbacks, acc=1, epochs=EPOCHS, logger=False, ckpt_path=None, **module_kw):
    module = TinyModule(**module_kw)
    make_trainer(root, callbacks, acc, epochs, logger).fit(module, ckpt_path=ckpt_path)
    return module


def torch_sequence(make_scheduler, n, kind="sgd"):
    """(lr, momentum) that a torch scheduler sets for optimizer steps 0..n-1."""
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9) if kind == "sgd" else torch.optim.Adam(params, lr=0.1)
    sched = make_scheduler(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            out.append((opt.param_groups[0]["lr"], momentum_of(opt.param_groups[0])))
            sched.step()
    return out


def close(a, b, rel=REL):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def assert_records(records, expected, acc, lr_scales, momentum_fixed=None):
    """Every micro-batch of optimizer step s saw expected[s] (lr times the group's lr_scale), in order."""
    total = len(expected)
    assert [s for s, _ in records] == [s for s in range(total) for _ in range(acc)]
    for step, groups in records:
        lr_e, m_e = expected[step]
        for (lr, m), scale in zip(groups, lr_scales):
            assert close(lr, lr_e * scale), (step, lr, lr_e * scale)
            assert close(m, m_e if m_e is not None else momentum_fixed), (step, m, m_e)


def read_scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc, {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
