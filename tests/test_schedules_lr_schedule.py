"""callbacks.schedules.lr_schedule (LRSchedule) through real (tiny, CPU) ``pl.Trainer.fit`` runs: per-step values,
what is logged and plotted, bad input, configs.

Oracles: torch's ``OneCycleLR`` / ``CyclicLR`` driven step by step, hand-derived piecewise/warm-up values
(``numpy.interp``), the TensorBoard event files read back with ``EventAccumulator``, Lightning's own
``LearningRateMonitor``. Resuming: test_schedules_lr_schedule_resume.py.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import TensorBoardLogger

from callbacks.gradient_noise import GradientNoise
from callbacks.schedules.lr_schedule import LRSchedule
from schedule_fixtures import (
    EPOCHS, N_BATCHES, REPO, Cyclic, OneCycle, Piecewise, TinyModule, Warmup, assert_records, close, fit,
    read_scalars, torch_sequence,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --------------------------------------------------------------------------- per-step values
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("acc", [1, 2])
def test_one_cycle_per_step_equals_torch(tmp_path, kind, acc):
    m = fit(tmp_path, [OneCycle(max_lr=0.5, plot=False)], acc=acc, optimizer=kind)
    total = math.ceil(N_BATCHES / acc) * EPOCHS  # independent of the trainer's estimate
    expected = torch_sequence(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.5, total_steps=total, pct_start=0.45, anneal_strategy="linear", div_factor=10.0,
            final_div_factor=100.0, three_phase=True, base_momentum=0.85, max_momentum=0.95),
        total, kind)
    assert_records(m.records, expected, acc, (1.0, 2.0))
    assert m.records[-1][1][0][0] == pytest.approx(0.5 / 10 / 100)  # the last optimizer step: the final value


def test_cyclic_per_step_equals_torch(tmp_path):
    cb = Cyclic(base_lr=0.05, max_lr=0.4, step_size_up=3, step_size_down=5, mode="triangular2",
                cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, plot=False)
    m = fit(tmp_path, [cb], acc=2)
    total = 4 * EPOCHS
    expected = torch_sequence(
        lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.05, max_lr=0.4, step_size_up=3, step_size_down=5,
                                                    mode="triangular2", base_momentum=0.8, max_momentum=0.9),
        total)
    assert_records(m.records, expected, 2, (1.0, 2.0))


def test_cyclic_epoch_unit(tmp_path):
    cb = Cyclic(base_lr=0.0, max_lr=0.4, step_size_up=0.5, unit="epoch", plot=False)  # 4 steps up, 4 down
    m = fit(tmp_path, [cb], lr_scales=(1.0,))
    lrs = [g[0][0] for _, g in m.records]
    assert lrs == pytest.approx(list(np.interp(np.arange(24) % 8, [0, 4, 8], [0, 0.4, 0])))
    assert all(g[0][1] == 0.9 for _, g in m.records)  # momentum untouched without cycle_momentum


def test_piecewise_epoch_knots_with_momentum_on_adam(tmp_path):
    # the ResNet-9 shape (0 -> peak at epoch 5 -> 0 at epoch 24) squeezed into 3 epochs of 8 steps
    cb = Piecewise(knots=[0, 1, 3], values=[0.0, 0.4, 0.0], unit="epoch", momentum_values=[0.95, 0.85, 0.95],
                   plot=False)
    m = fit(tmp_path, [cb], optimizer="adam", lr_scales=(1.0,))
    last = N_BATCHES * EPOCHS - 1
    k = [0, last / EPOCHS, last]  # epoch e sits at step e * (total - 1) / epochs: the last step is the end
    steps = np.arange(last + 1)
    expected = list(zip(np.interp(steps, k, [0, 0.4, 0]), np.interp(steps, k, [0.95, 0.85, 0.95])))
    assert_records(m.records, expected, 1, (1.0,))
    assert m.records[-1][1][0][0] == 0.0  # the final knot's value is the last step's value
    assert max(range(len(m.records)), key=lambda i: m.records[i][1][0][0]) == 8  # peak at the epoch-1 boundary


def test_warmup_gradual_then_step_decay(tmp_path):
    cb = Warmup(max_lr=0.4, warmup_length=1, warmup_type="gradual", warmup_factor=0.25, decay="step",
                milestones=[2], gamma=0.1, unit="epoch", plot=False)
    m = fit(tmp_path, [cb], acc=1, lr_scales=(1.0,))
    w = 23 / 3  # one epoch on the step axis; steps 0..7 (one epoch) warm up, step 16 (epoch 2) decays
    expected = [0.4 * (0.25 + 0.75 * s / w) if s < 8 else (0.4 if s < 16 else 0.04) for s in range(24)]
    assert_records(m.records, [(lr, None) for lr in expected], 1, (1.0,), momentum_fixed=0.9)


def test_warmup_constant_then_cosine_fraction(tmp_path):
    cb = Warmup(max_lr=0.3, warmup_length=0.25, warmup_type="constant", warmup_factor=0.1, decay="cosine",
                eta_min=0.003, unit="fraction", plot=False)
    m = fit(tmp_path, [cb], acc=2, lr_scales=(1.0,))
    total, w = 12, 0.25 * 11
    expected = [0.03 if s < w else 0.003 + (0.3 - 0.003) * (1 + math.cos(math.pi * (s - w) / (11 - w))) / 2
                for s in range(total)]
    assert_records(m.records, [(lr, None) for lr in expected], 2, (1.0,), momentum_fixed=0.9)
    assert m.records[-1][1][0][0] == pytest.approx(0.003)


# --------------------------------------------------------------------------- visibility
def test_logged_scalars_monitor_and_plot(tmp_path):
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version=0)
    monitor = LearningRateMonitor(logging_interval="step", log_momentum=True)
    m = fit(tmp_path, [OneCycle(max_lr=0.5), monitor], acc=2, logger=logger)
    total = 4 * EPOCHS
    set_values = {s: g for s, g in m.records}  # what the optimizer held at each step
    ea, scalars = read_scalars(logger.log_dir)
    for i in range(2):
        for j, tag in enumerate([f"train/lr/pg{i}", f"train/momentum/pg{i}"]):
            events = scalars[tag]
            assert [s for s, _ in events] == list(range(total)), tag  # exactly once per optimizer step
            for s, v in events:
                assert close(v, set_values[s][i][j]), (tag, s, v)
        # Lightning's LearningRateMonitor reads the same values (it logs once per micro-batch)
        for j, tag in enumerate([f"lr-SGD/pg{i + 1}", f"lr-SGD/pg{i + 1}-momentum"]):
            events = scalars[tag]
            assert sorted({s for s, _ in events}) == list(range(total)), tag
            for s, v in events:
                assert close(v, set_values[s][i][j]), (tag, s, v)
    # the planned curves: a PNG in the run directory and a TensorBoard image
    png = Path(logger.log_dir) / "schedule.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "train/schedule" in ea.Tags()["images"]


@pytest.mark.parametrize("acc", [1, 2])
def test_logged_on_the_steps_lightning_logs_on(tmp_path, acc):
    """trainer.log_every_n_steps=3: train/lr on the same steps as LearningRateMonitor, each once, with the values
    the optimizer held; every step's value is still applied."""
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version=0)
    monitor = LearningRateMonitor(logging_interval="step")
    module = TinyModule(lr_scales=(1.0,))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=EPOCHS, accumulate_grad_batches=acc, logger=logger,
                         callbacks=[OneCycle(max_lr=0.5, plot=False), monitor], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=3,
                         num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(module)
    total = N_BATCHES * EPOCHS // acc
    _, scalars = read_scalars(logger.log_dir)
    steps = [s for s, _ in scalars["train/lr"]]
    assert steps == [s for s in range(total) if (s + 1) % 3 == 0]
    assert sorted({s for s, _ in scalars["lr-SGD"]}) == steps
    held = {s: g[0][0] for s, g in module.records}
    assert all(close(v, held[s]) for s, v in scalars["train/lr"])
    assert sorted(held) == list(range(total))


def test_planned_curves_equal_applied_values(tmp_path):
    cb = OneCycle(max_lr=0.5, plot=False)
    m = fit(tmp_path, [cb], acc=1)
    lrs, moms = cb.planned_curves((1.0, 2.0))
    assert [g[1][0] for _, g in m.records] == lrs[1]
    assert [g[0][1] for _, g in m.records] == moms


# --------------------------------------------------------------------------- bad input
def test_bad_shape_fails_when_the_callback_is_built():
    with pytest.raises(ValueError, match=r"scheduler.pct_start must be in \(0, 0.5\)"):
        OneCycle(max_lr=0.1, pct_start=0.7)
    with pytest.raises(ValueError, match=r"scheduler.max_lr (is 'auto'|must be a number > 0, got 'auto')"):
        OneCycle(max_lr="auto")
    with pytest.raises(ValueError, match="expected a schedule function"):
        LRSchedule("one_cycle")
    for bad in (lambda: GradientNoise(eta=0), lambda: GradientNoise(gamma=-1), lambda: GradientNoise(seed=-1)):
        with pytest.raises(ValueError, match="`(eta|gamma|seed)`"):
            bad()


@pytest.mark.parametrize(
    "callbacks,module_kw,expected",
    [
        (lambda: [Warmup(max_lr=0.1, warmup_length=3, unit="epoch", plot=False)], {},
         r"scheduler.warmup_length must be shorter than training: got 3 epoch\(s\), the run is 3 epoch\(s\)"),
        (lambda: [Warmup(max_lr=0.1, warmup_length=24, unit="step", plot=False)], {}, r"scheduler.warmup_length"),
        (lambda: [OneCycle(max_lr=0.1, plot=False)], {"momentum": 0.0}, r"sets momentum.*momentum=0"),
        (lambda: [OneCycle(max_lr=0.1, plot=False)], {"optimizer": "adagrad"},
         r"sets momentum.*Adagrad.*neither `momentum` nor `betas`"),
        (lambda: [Piecewise(knots=[0, 1], values=[0.1, 0.0], momentum_values=[0.9, 0.8], plot=False)],
         {"optimizer": "adagrad"}, r"'piecewise' sets momentum.*neither `momentum` nor `betas`"),
        (lambda: [Cyclic(base_lr=0.01, max_lr=0.1, step_size_up=0.1, unit="epoch", plot=False)], {},
         r"scheduler.step_size_up is 0.8 optimizer steps"),
        (lambda: [OneCycle(max_lr=0.1, plot=False)], {"n_batches": 2},
         r"one-cycle with scheduler.pct_start=0.45 needs more than 1/pct_start = 2.22 \(pct_start x total_steps > 1\)"),
    ],
)
def test_bad_input_at_train_start(tmp_path, callbacks, module_kw, expected):
    epochs = 1 if module_kw.get("n_batches") == 2 else EPOCHS
    with pytest.raises(ValueError, match=expected):
        fit(tmp_path, callbacks(), epochs=epochs, **module_kw)


def test_momentum_free_optimizer_is_fine_without_momentum_schedule(tmp_path):
    m = fit(tmp_path, [OneCycle(max_lr=0.2, cycle_momentum=False, plot=False)], optimizer="adagrad")
    assert [g[0][1] for _, g in m.records] == [None] * 24  # nothing switched on


# --------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", ["one_cycle", "piecewise", "cyclic", "warmup"])
def test_scheduler_configs_instantiate(name):
    from hydra.utils import instantiate

    cfg = OmegaConf.load(REPO / "conf" / "scheduler" / f"{name}.yaml")
    assert not {"total_steps", "epochs", "steps_per_epoch"} & set(cfg)  # shape parameters only
    cb = LRSchedule(instantiate(cfg))
    assert cb.name == name and cb.shape == {k: v for k, v in OmegaConf.to_container(cfg).items()
                                            if not k.startswith("_")}


def test_none_and_gradient_noise_configs():
    from hydra.utils import instantiate

    assert "_target_" not in OmegaConf.load(REPO / "conf" / "scheduler" / "none.yaml")
    cfg = OmegaConf.load(REPO / "conf" / "callbacks" / "gradient_noise.yaml")
    assert list(cfg.defaults) == ["default", "_self_"]
    cb = instantiate(cfg.gradient_noise)
    assert isinstance(cb, GradientNoise) and (cb.eta, cb.gamma) == (0.3, 0.55)
