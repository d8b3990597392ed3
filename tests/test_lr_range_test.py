"""LRRangeTest / AccuracyRangeTest: bitwise restore, sweep shape, stop rule, wiring, outputs, bad input, DDP."""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from callbacks.lr_range_test import AccuracyRangeTest, LRRangeTest, lr_range_test

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


# ----------------------------------------------------------------------------- tiny model and data
def _dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(123))
    return TensorDataset(x, (x @ w).argmax(1))


class TinyDM(pl.LightningDataModule):
    """Shuffled train loader; training augmentation (noise from the global torch, numpy and python RNGs) applied
    after transfer, as the project's datamodules do."""

    def __init__(self, n_train: int = 96, n_val: int = 32, batch_size: int = 8):
        super().__init__()
        self.train_ds, self.val_ds, self.batch_size = _dataset(n_train, 0), _dataset(n_val, 1), batch_size
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


class Snap(pl.Callback):
    """Records model/optimizer/scaler/RNG state at on_train_start (position in the callback list matters)."""

    def __init__(self):
        self.state = None

    def on_train_start(self, trainer, pl_module):
        self.state = capture(trainer, pl_module)


class AutoProbe(pl.Callback):
    """A stand-in schedule: max_lr="auto" at construction; applies max_lr to the optimizer during training."""

    def __init__(self):
        self.max_lr = "auto"
        self.seen_at_start = None

    def on_train_start(self, trainer, pl_module):
        self.seen_at_start = self.max_lr

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for g in trainer.optimizers[0].param_groups:
            g["lr"] = self.max_lr * g.get("lr_scale", 1.0)


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


def quiet(**kw):
    kw.setdefault("verbose", False)
    return kw


# ----------------------------------------------------------------------------- restore at the start of training
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_restore_is_bitwise_at_train_start(tmp_path, opt):
    before, after = Snap(), Snap()
    rt = LRRangeTest(num_steps=30, min_lr=1e-4, max_lr=1.0, seed=7, output_dir=str(tmp_path / "rt"), **quiet())
    tr, model = fit(tmp_path, opt=opt, callbacks=[before, rt, after])
    rng_after = torch.get_rng_state()
    assert_same_state(before.state, after.state)
    assert any("running_mean" in k for k in before.state["model"])  # BatchNorm statistics are covered
    # the sweep really trained: 30 steps evaluated the loss 30 times at 30 different LRs and the loss moved
    assert len({tuple(x) for x in model.lr_trace[:30]}) == 30
    assert len(rt.result["losses"]) == 30 and np.ptp(rt.result["losses"]) > 0
    # the run is indistinguishable from one without the test: first batch (augmentation included) and final weights
    tr0, model0 = fit(tmp_path, opt=opt)
    assert_tensors_equal(model.first_batch, model0.first_batch)
    assert_tensors_equal(model.state_dict(), model0.state_dict())
    assert_tensors_equal(tr.optimizers[0].state_dict(), tr0.optimizers[0].state_dict())
    assert torch.equal(rng_after, torch.get_rng_state()) and tr.global_step == tr0.global_step > 0


class MidRun(LRRangeTest):
    """Runs the sweep at the start of epoch 1 (global_step > 0, optimizer state populated) instead of at train start."""

    def on_train_start(self, trainer, pl_module):
        pass

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            self.step_at_run = trainer.global_step
            self.before = capture(trainer, pl_module)
            self.run(trainer, pl_module)
            self.after = capture(trainer, pl_module)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_restore_is_bitwise_after_some_training(tmp_path, opt):
    rt = MidRun(num_steps=20, min_lr=1e-3, max_lr=1.0, seed=None, output_dir=str(tmp_path / "rt"), **quiet())
    tr, model = fit(tmp_path, opt=opt, callbacks=[rt], max_epochs=3)
    assert rt.step_at_run > 0
    assert len(rt.before["opt_state"]["state"]) > 0  # momentum buffers / Adam moments existed and were restored
    assert_same_state(rt.before, rt.after)
    tr0, model0 = fit(tmp_path, opt=opt, max_epochs=3)
    assert_tensors_equal(model.state_dict(), model0.state_dict())
    assert_tensors_equal(tr.optimizers[0].state_dict(), tr0.optimizers[0].state_dict())


def test_restore_with_mixed_precision_grad_scaler(tmp_path):
    from pytorch_lightning.plugins.precision import MixedPrecision

    def plugin():
        return MixedPrecision("16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10,
                                                                                       growth_interval=2))

    class ScaleTrace(TinyNet):
        def compute_loss(self, batch):
            self.scales = getattr(self, "scales", []) + [self.trainer.precision_plugin.scaler.get_scale()]
            return super().compute_loss(batch)

    before, after = Snap(), Snap()
    rt = LRRangeTest(num_steps=20, min_lr=1e-4, max_lr=1.0, output_dir=str(tmp_path / "rt"), **quiet())
    pl.seed_everything(0, verbose=False)
    model = ScaleTrace()
    tr = trainer(tmp_path, [before, rt, after], plugins=[plugin()], max_epochs=1)
    tr.fit(model, datamodule=TinyDM())
    assert len(set(model.scales[:20])) > 1  # the scaler's scale changed during the sweep ...
    assert before.state["scaler"]["scale"] == 2.0**10
    assert_same_state(before.state, after.state)  # ... and was put back


def test_persistent_worker_loader_keeps_its_epoch_iterator(tmp_path):
    """A persistent-workers DataLoader shares one iterator; the sweep must not reset the one Lightning holds."""
    class PersistentDM(TinyDM):
        def train_dataloader(self):
            return DataLoader(self.train_ds, batch_size=8, shuffle=True, num_workers=1, persistent_workers=True)

    rt = LRRangeTest(num_steps=15, min_lr=1e-4, max_lr=1.0, output_dir=str(tmp_path), **quiet())
    _, model = fit(tmp_path, callbacks=[rt], dm=PersistentDM())
    _, model0 = fit(tmp_path, dm=PersistentDM())
    assert_tensors_equal(model.first_batch, model0.first_batch)
    assert_tensors_equal(model.state_dict(), model0.state_dict())


def test_sweep_batch_counter_for_progress_keyed_augmentation(tmp_path):
    """Datamodules that define ``range_test_batch`` see a running count during the sweep, None afterwards."""
    class Keyed(TinyDM):
        range_test_batch = None

        def __init__(self):
            super().__init__()
            self.seen = []

        def on_after_batch_transfer(self, batch, dataloader_idx):
            self.seen.append(self.range_test_batch)
            return super().on_after_batch_transfer(batch, dataloader_idx)

    dm = Keyed()
    rt = LRRangeTest(num_steps=10, min_lr=1e-4, max_lr=1.0, repeats=2, output_dir=str(tmp_path), **quiet())
    fit(tmp_path, callbacks=[rt], dm=dm, max_epochs=1, limit_train_batches=2)
    assert dm.seen == list(range(20)) + [None, None]  # two repeats of 10 sweep batches, then training
    assert dm.range_test_batch is None


def test_plain_function_leaves_model_untouched(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = TinyNet()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    res = lr_range_test(model, datamodule=TinyDM(), trainer_kwargs={"default_root_dir": str(tmp_path)},
                        num_steps=15, suggestion="valley", verbose=False)
    assert res["chosen_lr"] == res["suggestions"]["valley"] and len(res["losses"]) == 15
    assert_tensors_equal(model.state_dict(), init)
    assert (tmp_path / "lr_range_test.csv").exists()


# ----------------------------------------------------------------------------- the sweep itself
@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_sweep_lrs_monotone_span_accumulation_and_lr_scale(tmp_path, mode, monkeypatch):
    from pytorch_lightning.plugins.precision import Precision

    clipped = []
    original = Precision.clip_gradients
    monkeypatch.setattr(Precision, "clip_gradients",
                        lambda self, opt, clip_val=0.0, gradient_clip_algorithm=None: (
                            clipped.append((clip_val, gradient_clip_algorithm.value)),
                            original(self, opt, clip_val, gradient_clip_algorithm)))
    rt = LRRangeTest(num_steps=12, min_lr=1e-4, max_lr=1e-1, mode=mode, diverge_factor=None, stop_after=True,
                     output_dir=str(tmp_path / "rt"), **quiet())
    clip = {"gradient_clip_val": 0.5, "gradient_clip_algorithm": "value" if mode == "linear" else "norm"}
    tr, model = fit(tmp_path, callbacks=[rt], accumulate_grad_batches=2, **clip)
    expected = np.geomspace(1e-4, 1e-1, 12) if mode == "exp" else np.linspace(1e-4, 1e-1, 12)
    trace = np.array(model.lr_trace)
    assert trace.shape == (24, 2)  # two micro-batches per optimizer step, one LR per optimizer step
    np.testing.assert_allclose(trace[:, 0], np.repeat(expected, 2), rtol=1e-12)
    np.testing.assert_allclose(trace[:, 1], 2.0 * np.repeat(expected, 2), rtol=1e-12)  # lr_scale honoured
    np.testing.assert_allclose(rt.result["lrs"], expected, rtol=1e-12)
    assert np.all(np.diff(rt.result["lrs"]) > 0)
    assert rt.result["lrs"][0] == 1e-4 and rt.result["lrs"][-1] == 1e-1
    # gradient clipping honoured once per optimizer step
    assert clipped == [(0.5, clip["gradient_clip_algorithm"])] * 12
    # stop_after (task=lr_range_test): no training step happened
    assert tr.global_step == 0 and model.first_batch is None


def test_divergence_stop(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = Regression()
    rt = LRRangeTest(num_steps=100, min_lr=1e-4, max_lr=100.0, stop_after=True, output_dir=str(tmp_path),
                     **quiet())
    trainer(tmp_path, [rt]).fit(model, DataLoader(_dataset(64, 0), batch_size=16, shuffle=True))
    losses = np.array(rt.result["losses"])
    stop = rt.result["stop"]
    assert stop is not None and 3 <= stop < 99
    assert len(losses) == stop + 1 and model.calls == stop + 1  # nothing evaluated after the stop
    # oracle: first step whose bias-corrected running average (explicit weighted mean) exceeds 4x its best so far
    ema = [float(np.sum(0.98 ** np.arange(t, -1, -1) * losses[: t + 1]) / np.sum(0.98 ** np.arange(t, -1, -1)))
           for t in range(len(losses))]
    first = next(t for t in range(1, len(ema)) if not math.isfinite(ema[t]) or ema[t] > 4 * min(ema[:t]))
    assert first == stop
    # the suggestion sits below the blow-up
    assert rt.result["chosen_lr"] < rt.result["lrs"][stop]


# ----------------------------------------------------------------------------- wiring and outputs
def test_auto_wiring_outputs_and_repeats(tmp_path):
    from pytorch_lightning.loggers import TensorBoardLogger

    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tb")
    probe = AutoProbe()
    rt = LRRangeTest(num_steps=25, min_lr=1e-4, max_lr=10.0, repeats=2, seed=3)
    tr, model = fit(tmp_path, callbacks=[rt, probe], logger=logger, max_epochs=1, limit_train_batches=3)
    res = rt.result
    chosen = res["chosen_lr"]
    assert probe.seen_at_start == chosen == rt.found_lr == model.hparams["found_max_lr"]
    assert res["auto_callbacks"] == ["AutoProbe"]
    assert model.train_lrs == [chosen] * 3  # training ran with the found LR
    # repeats: geometric mean of the per-repeat values, spread reported
    vals = res["spread"]["min_div10"]["values"]
    assert len(vals) == 2 and chosen == pytest.approx(math.exp(np.mean(np.log(vals))))
    out = Path(logger.log_dir)
    png, csv_path, js = out / "lr_range_test.png", out / "lr_range_test.csv", out / "lr_range_test.json"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    first = [r for r in rows if r["repeat"] == "0"]
    assert [float(r["lr"]) for r in first] == res["runs"][0]["lrs"]
    assert [float(r["loss"]) for r in first] == res["runs"][0]["losses"]
    assert [float(r["smoothed_loss"]) for r in first] == res["runs"][0]["smoothed"]
    assert len(rows) == sum(len(r["losses"]) for r in res["runs"])
    summary = json.loads(js.read_text())
    assert summary["chosen_lr"] == chosen and summary["suggestion"] == "min_div10"
    assert summary["suggestions"] == res["suggestions"] and set(summary["suggestions"]) == {
        "min_div10", "steepest", "valley", "loss_min"}
    assert len(summary["repeats"]) == 2 and summary["spread"]["min_div10"]["std"] >= 0
    # TensorBoard: the curve as scalars (step = sweep step) and the figure
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    loss_events = acc.Scalars("lr_range_test/loss")
    assert [e.step for e in loss_events] == list(range(len(res["losses"])))
    np.testing.assert_allclose([e.value for e in loss_events], res["losses"], rtol=1e-6)
    assert len(acc.Scalars("lr_range_test/smoothed_loss")) == len(res["losses"])
    assert len(acc.Scalars("lr_range_test/lr")) == len(res["losses"])
    assert "lr_range_test/curve" in acc.Tags()["images"]


def test_training_step_fallback_keeps_logging_intact(tmp_path):
    class NoHelper(TinyNet):
        compute_loss = None

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train/loss", loss)
            return {"loss": loss}

    rt = LRRangeTest(num_steps=15, min_lr=1e-4, max_lr=1.0, output_dir=str(tmp_path), **quiet())
    pl.seed_everything(0, verbose=False)
    model = NoHelper()
    tr = trainer(tmp_path, [rt], max_epochs=1, limit_train_batches=2)
    tr.fit(model, datamodule=TinyDM())
    assert len(rt.result["losses"]) == 15
    assert "log" not in model.__dict__ and "log_dict" not in model.__dict__
    assert "train/loss" in tr.callback_metrics  # the real training steps still log


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_lr": 1.0, "max_lr": 1.0}, "min_lr"),
        ({"min_lr": 0.0}, "min_lr must be > 0"),
        ({"num_steps": 9}, "num_steps must be an integer >= 10"),
        ({"mode": "cosine"}, "mode"),
        ({"suggestion": "fastest"}, "suggestion must be one of"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"smooth_beta": 1.0}, "smooth_beta"),
        ({"repeats": 0}, "repeats"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRRangeTest(**kwargs)


@pytest.mark.parametrize("name, cls", [("exp", LRRangeTest), ("linear", LRRangeTest),
                                       ("accuracy", AccuracyRangeTest)])
def test_range_test_configs_instantiate(name, cls):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf" / "range_test" / f"{name}.yaml")
    cb = instantiate(cfg)
    assert type(cb) is cls and cb.stop_after is False
    if name == "exp":
        assert (cb.mode, cb.min_lr, cb.max_lr, cb.num_steps, cb.diverge_factor, cb.smooth_beta, cb.suggestion) == (
            "exp", 1e-5, 10.0, 200, 4.0, 0.98, "min_div10")
    bad = OmegaConf.merge(cfg, {"min_lr": 5.0, "max_lr": 1.0})
    with pytest.raises(Exception, match=r"range_test.min_lr \(5.0\) must be < range_test.max_lr") as err:
        instantiate(bad)  # Hydra wraps the ValueError in an InstantiationException
    assert isinstance(err.value, ValueError) or isinstance(err.value.__cause__, ValueError)


@pytest.mark.parametrize("case", ["nan_first", "explodes_early"])
def test_bad_start_is_reported_and_model_restored(tmp_path, case):
    pl.seed_everything(0, verbose=False)
    model = TinyNet(nan_loss=True) if case == "nan_first" else Regression()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    snap = Snap()
    min_lr = 1e-4 if case == "nan_first" else 1e4
    rt = LRRangeTest(num_steps=20, min_lr=min_lr, max_lr=min_lr * 1e3, output_dir=str(tmp_path), **quiet())
    tr = trainer(tmp_path, [snap, rt])
    dm = TinyDM() if case == "nan_first" else None
    loader = None if dm else DataLoader(_dataset(64, 0), batch_size=16)
    match = "very first step" if case == "nan_first" else "exploded within the first"
    with pytest.raises(RuntimeError, match=match) as err:
        tr.fit(model, train_dataloaders=loader, datamodule=dm)
    assert "lower range_test.min_lr" in str(err.value)
    assert_tensors_equal({k: v for k, v in model.state_dict().items()}, init)
    if case == "explodes_early":
        assert model.calls >= 2  # some steps were taken before the error, and undone
    assert torch.equal(torch.get_rng_state(), snap.state["torch_rng"])
    assert_tensors_equal(tr.optimizers[0].state_dict(), snap.state["opt_state"])


def test_short_loader_is_cycled_with_a_warning(tmp_path):
    rt = LRRangeTest(num_steps=30, min_lr=1e-4, max_lr=1.0, stop_after=True, output_dir=str(tmp_path), **quiet())
    with pytest.warns(UserWarning, match="has 4 batches but the sweep needs 30; cycling"):
        fit(tmp_path, callbacks=[rt], dm=TinyDM(n_train=32))
    assert len(rt.result["losses"]) == 30


# ----------------------------------------------------------------------------- Smith 2015 accuracy test
def test_accuracy_range_test(tmp_path):
    before, after, probe = Snap(), Snap(), AutoProbe()
    at = AccuracyRangeTest(min_lr=0.0, max_lr=2.0, num_steps=30, eval_every=5, eval_batches=2,
                           output_dir=str(tmp_path), verbose=False)

    class InitAcc(pl.Callback):  # oracle for the first measurement: eval mode, no augmentation, 2 val batches
        def on_train_start(self, trainer, pl_module):
            pl_module.eval()
            with torch.no_grad():
                batches = list(DataLoader(_dataset(32, 1), batch_size=8))[:2]
                self.acc = sum(int(pl_module.accuracy_counts(b)[0]) for b in batches) / 16
            pl_module.train()

    init, dm = InitAcc(), TinyDM()
    tr, model = fit(tmp_path, callbacks=[init, before, at, after, probe], dm=dm, max_epochs=1, limit_train_batches=2)
    res = at.result
    assert dm.plain_batches == 7 * 2  # every measurement: 2 validation batches, none augmented
    assert [e[0] for e in res["evals"]] == [-1, 4, 9, 14, 19, 24, 29]
    np.testing.assert_allclose(res["lrs"], np.linspace(0.0, 2.0, 30), rtol=1e-12)
    assert res["evals"][0][2] == pytest.approx(init.acc)
    assert 0.0 <= res["base_lr"] <= res["max_lr"] <= 2.0
    assert res["peak_acc"] > res["start_acc"]
    assert probe.seen_at_start == res["max_lr"] == model.hparams["found_max_lr"]
    assert_same_state(before.state, after.state)
    assert (tmp_path / "accuracy_range_test.png").exists()
    summary = json.loads((tmp_path / "accuracy_range_test.json").read_text())
    assert summary["max_lr"] == res["max_lr"] and len(summary["evals"]) == 7


# ----------------------------------------------------------------------------- 2-process DDP (gloo, CPU)
DDP_SCRIPT = """
import json, os, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import torch, pytorch_lightning as pl
torch.set_num_threads(1)
from test_lr_range_test import TinyNet, TinyDM, Snap, capture
from callbacks.lr_range_test import LRRangeTest

class Report(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.state = capture(trainer, pl_module)

class Probe(LRRangeTest):
    def _one_sweep(self, trainer, pl_module, stream, lrs):
        self.start = torch.cat([p.detach().flatten() for p in pl_module.parameters()]).tolist()
        out = super()._one_sweep(trainer, pl_module, stream, lrs)
        self.swept = torch.cat([p.detach().flatten() for p in pl_module.parameters()]).tolist()
        return out

if __name__ == "__main__":
    out = sys.argv[1]
    pl.seed_everything(0, verbose=False)
    before, rt, probe = Snap(), Probe(num_steps=15, min_lr=1e-4, max_lr=10.0, verbose=False), Report()
    trainer = pl.Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=1, limit_train_batches=2,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         default_root_dir=out, callbacks=[before, rt, probe])
    model = TinyNet()
    trainer.fit(model, datamodule=TinyDM())
    restored = all(torch.equal(a, b) for a, b in zip(before.state["model"].values(), probe.state["model"].values()))
    res = rt.result
    with open(os.path.join(out, f"rank{{trainer.global_rank}}.json"), "w") as f:
        json.dump({{"chosen": res["chosen_lr"], "suggestions": res["suggestions"], "losses": res["losses"],
                   "local": res["runs"][0]["local_losses"], "restored": restored,
                   "hparam": float(model.hparams["found_max_lr"]), "swept": rt.swept,
                   "start": rt.start}}, f)
"""


def test_ddp_two_processes_agree(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["chosen"] == r1["chosen"] == r0["hparam"] == r1["hparam"]
    assert r0["suggestions"] == r1["suggestions"]
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) >= 4
    # the recorded loss is the mean of the two ranks' own losses (which differ: different shards)
    assert r0["local"] != r1["local"]
    np.testing.assert_allclose(r0["losses"], (np.array(r0["local"]) + np.array(r1["local"])) / 2, rtol=1e-6)
    assert r0["restored"] and r1["restored"]
    # gradients were averaged across ranks during the sweep: the swept weights agree (and moved)
    np.testing.assert_array_equal(r0["swept"], r1["swept"])
    assert r0["start"] == r1["start"] and r0["swept"] != r0["start"]
    assert (tmp_path / "lr_range_test.png").exists() and (tmp_path / "lr_range_test.json").exists()
