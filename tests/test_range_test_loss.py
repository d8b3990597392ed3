"""LRRangeTest: divergence stop against an explicit oracle, status line, repeats, training_step fallback, bad
starts and bad arguments (naming range_test.<key>), every conf/range_test config instantiates."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from callbacks.range_test.accuracy import AccuracyRangeTest
from callbacks.range_test.loss import LRRangeTest, loss_rise, sweep_status
from callbacks.range_test.update_size import update_point
from conftest import compose_config
from range_fixtures import (Regression, Snap, SweepThenTrain, TinyDM, TinyNet, assert_tensors_equal, dataset, fit,
                            trainer)

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _ema_oracle(losses, beta=0.98):
    """Bias-corrected running average written as an explicit weighted mean."""
    return [float(np.sum(beta ** np.arange(t, -1, -1) * losses[: t + 1]) / np.sum(beta ** np.arange(t, -1, -1)))
            for t in range(len(losses))]


def test_divergence_stop(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = Regression()
    rt = LRRangeTest(num_steps=100, min_lr=1e-4, max_lr=100.0, trial_factors=None)  # the sweep alone
    trainer(tmp_path, [rt]).fit(model, DataLoader(dataset(64, 0), batch_size=16, shuffle=True))
    res = rt.result
    losses = np.array(res.losses)
    stop = res.stop_index
    assert stop is not None and 3 <= stop < 99
    assert len(losses) == stop + 1 and model.calls == stop + 1  # nothing evaluated after the stop
    ema = _ema_oracle(losses)
    first = next(t for t in range(1, len(ema)) if not math.isfinite(ema[t]) or ema[t] > 4 * min(ema[:t]))
    assert first == stop
    # the status names the step and the rise the stop rule saw
    ratio = ema[stop] / min(ema[:stop])
    assert res.status.startswith(f"stopped at step {stop}") and f"{ratio:.1f}x its minimum" in res.status
    assert res.loss_rise >= ratio - 1e-9
    # the chosen suggestion sits below the blow-up, and every suggestion at or below the smoothed minimum
    assert res.lr < res.lrs[stop]
    assert all(v <= res.suggestions["loss_min"] * (1 + 1e-12) for v in res.suggestions.values())
    assert res.kind == "loss" and res.rule == "loss_min" and res.base_lr is None and res.elapsed_s > 0


def test_status_never_says_no_divergence_when_the_loss_doubled():
    lrs = list(np.geomspace(1e-4, 1.0, 60))
    x = np.log10(lrs)
    losses = 2.0 - np.tanh(x + 3) + 2.5 * np.clip(x + 1, 0, None) ** 2  # min ~1.0 near 1e-1.., ends ~3.5
    ra = list(np.asarray(_ema_oracle(losses)))
    sm = list(losses)
    st = sweep_status(lrs, list(losses), sm, ra, None, 4.0)
    rise = loss_rise(sm, ra)
    assert rise > 2 and "no divergence" not in st and f"{rise:.1f}x its minimum" in st
    flat = list(2.0 - 0.1 * np.tanh(x + 3) + 0.1 * np.clip(x + 1, 0, None))
    st2 = sweep_status(lrs, flat, flat, list(_ema_oracle(np.array(flat))), None, 4.0)
    assert st2.startswith("no divergence") and "only" in st2
    falling = list(3.0 - 0.5 * x)
    assert "still falling" in sweep_status(lrs, falling, falling, falling, None, 4.0)
    nan = list(losses[:30]) + [float("nan")]
    assert "the loss became nan" in sweep_status(lrs[:31], nan, sm[:31], ra[:31], 30, 4.0)
    # sweep_diverged (what lr_source's "no upper limit" reads) agrees with the status on every one of these curves
    from callbacks.range_test.smoothing import sweep_diverged

    flat_rise = loss_rise(flat, list(_ema_oracle(np.array(flat))))
    assert sweep_diverged(None, rise) and sweep_diverged(30, None)
    assert not sweep_diverged(None, flat_rise) and not sweep_diverged(None, loss_rise(falling, falling))
    assert not sweep_diverged(None, 1.99) and sweep_diverged(None, 2.0)


def test_repeats_geometric_mean_and_spread(tmp_path):
    rt = LRRangeTest(num_steps=25, min_lr=1e-4, max_lr=10.0, repeats=2, seed=3)
    tr, model = fit(tmp_path, callbacks=[rt], max_epochs=1)
    res = rt.result
    assert len(res.repeats) == 2 and [r["seed"] for r in res.repeats] == [3, 4]
    assert res.repeats[0]["losses"] != res.repeats[1]["losses"]  # different seeds: different batches
    vals = res.spread["loss_min"]["values"]
    assert vals == [r["suggestions"]["loss_min"] for r in res.repeats]
    geomean = math.exp(np.mean(np.log(vals)))
    assert res.suggestions["loss_min"] == pytest.approx(geomean)
    one = next(t for t in res.trials if t["factor"] == pytest.approx(1.0))
    assert one["lr"] == pytest.approx(geomean)  # the trials are multiples of the geometric mean
    assert res.suggestions["trials"] in [t["lr"] for t in res.trials]
    points = [update_point(r["lrs"], r["updates"], stopped=r["stop_index"] is not None)  # over repeats too
              for r in res.repeats]
    assert res.suggestions["update"] == pytest.approx(math.exp(np.mean(np.log(points))))
    assert res.rule == "blend" and res.lr == pytest.approx(math.sqrt(res.suggestions["trials"] * res.suggestions["update"]))
    assert res.spread["loss_min"]["std"] == pytest.approx(np.std(vals, ddof=1))
    assert res.losses == res.repeats[0]["losses"] and tr.global_step == 0


def test_training_step_fallback_keeps_logging_intact(tmp_path):
    class NoHelper(TinyNet):
        compute_loss = None

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train/loss", loss)
            return {"loss": loss}

    rt = SweepThenTrain(num_steps=15, min_lr=1e-4, max_lr=1.0)
    pl.seed_everything(0, verbose=False)
    model = NoHelper()
    tr = trainer(tmp_path, [rt], max_epochs=1, limit_train_batches=2)
    tr.fit(model, datamodule=TinyDM())
    assert len(rt.result.losses) == 15
    assert "log" not in model.__dict__ and "log_dict" not in model.__dict__
    assert "train/loss" in tr.callback_metrics  # the real training steps still log


@pytest.mark.parametrize("case", ["nan_first", "explodes_early"])
def test_bad_start_is_reported_and_model_restored(tmp_path, case):
    pl.seed_everything(0, verbose=False)
    model = TinyNet(nan_loss=True) if case == "nan_first" else Regression()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    snap = Snap()
    min_lr = 1e-4 if case == "nan_first" else 1e4
    rt = LRRangeTest(num_steps=20, min_lr=min_lr, max_lr=min_lr * 1e3)
    tr = trainer(tmp_path, [snap, rt])
    dm = TinyDM() if case == "nan_first" else None
    loader = None if dm else DataLoader(dataset(64, 0), batch_size=16)
    match = "very first step" if case == "nan_first" else "exploded within the first"
    with pytest.raises(RuntimeError, match=match) as err:
        tr.fit(model, train_dataloaders=loader, datamodule=dm)
    assert "lower range_test.min_lr" in str(err.value)
    assert_tensors_equal(dict(model.state_dict()), init)
    if case == "explodes_early":
        assert model.calls >= 2  # some steps were taken before the error, and undone
    assert torch.equal(torch.get_rng_state(), snap.state["torch_rng"])
    assert_tensors_equal(tr.optimizers[0].state_dict(), snap.state["opt_state"])


def test_short_loader_is_cycled_with_a_warning(tmp_path):
    rt = LRRangeTest(num_steps=30, min_lr=1e-4, max_lr=1.0)
    with pytest.warns(UserWarning, match="has 4 batches but the sweep needs 30; cycling"):
        fit(tmp_path, callbacks=[rt], dm=TinyDM(n_train=32))
    assert len(rt.result.losses) == 30


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_lr": 1.0, "max_lr": 1.0}, r"range_test.min_lr \(1.0\) must be < range_test.max_lr \(1.0\)"),
        ({"min_lr": 0.0}, "range_test.min_lr must be > 0 for mode='exp'"),
        ({"max_lr": float("nan")}, "range_test.max_lr must be a finite number"),
        ({"num_steps": 9}, "range_test.num_steps must be an integer >= 10, got 9"),
        ({"num_steps": None}, "range_test.num_steps must be an integer >= 10, got None"),
        ({"mode": "cosine"}, "range_test.mode must be 'exp' or 'linear'"),
        ({"suggestion": "fastest"}, "range_test.suggestion must be one of"),
        ({"diverge_factor": 1.0}, "range_test.diverge_factor must be > 1"),
        ({"smooth_beta": 1.0}, r"range_test.smooth_beta must be in \[0, 1\)"),
        ({"repeats": 0}, "range_test.repeats must be an integer >= 1"),
        ({"seed": 1.5}, "range_test.seed must be an integer or null"),
        ({"bandwidth": 0.0}, "range_test.bandwidth must be > 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRRangeTest(**kwargs)


@pytest.mark.parametrize("name, cls", [("exp", LRRangeTest), ("linear", LRRangeTest),
                                       ("accuracy", AccuracyRangeTest)])
def test_range_test_configs_instantiate(name, cls):
    cfg = compose_config([f"range_test={name}", "range_test.num_steps=60"])
    cb = instantiate(cfg.range_test)
    assert type(cb) is cls and cb.num_steps == 60  # the command-line override reaches the callback
    assert not hasattr(cb, "stop_after") and "output_dir" not in cfg.range_test and "verbose" not in cfg.range_test
    if name == "exp":
        assert (cb.mode, cb.min_lr, cb.max_lr, cb.diverge_factor, cb.smooth_beta, cb.suggestion, cb.repeats) == (
            "exp", 1e-5, 10.0, 4.0, 0.98, "loss_min", 1)
    if name == "linear":  # only what differs is listed; the rest comes from exp.yaml
        raw = (ROOT / "conf" / "range_test" / "linear.yaml").read_text()
        assert "suggestion:" not in raw and "_target_" not in raw
        assert (cb.mode, cb.min_lr, cb.max_lr, cb.diverge_factor, cb.suggestion) == (
            "linear", 1e-4, 3.0, 4.0, "loss_min")
    bad = compose_config([f"range_test={name}", "range_test.min_lr=5.0", "range_test.max_lr=1.0"])
    with pytest.raises(Exception, match=r"range_test.min_lr \(5.0\) must be < range_test.max_lr") as err:
        instantiate(bad.range_test)  # Hydra wraps the ValueError in an InstantiationException
    assert isinstance(err.value, ValueError) or isinstance(err.value.__cause__, ValueError)


def test_no_side_channels_left():
    """The found LR flows forward only through the result: no 'auto' wiring, no hparams, no files."""
    import callbacks.range_test.loss as m

    for name in ("_set_auto", "_record_hparams", "SWEEP_BATCH_ATTR"):
        assert not hasattr(m, name)
    rt = LRRangeTest()
    for attr in ("stop_after", "found_lr", "output_dir", "verbose"):
        assert not hasattr(rt, attr)
    assert not (ROOT / "callbacks" / "lr_range_test.py").exists()  # a module name that looks like a test file
