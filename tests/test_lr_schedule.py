"""Schedule callbacks and gradient noise through real (tiny, CPU) ``pl.Trainer.fit`` runs.

Oracles: torch's ``OneCycleLR`` / ``CyclicLR`` driven step by step, hand-derived piecewise/warm-up values
(``numpy.interp``), the TensorBoard event files read back with ``EventAccumulator``, Lightning's own
``LearningRateMonitor``, and uninterrupted runs for the resume tests.
"""

from __future__ import annotations

import functools
import glob
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn

from callbacks.schedules import shapes as schedules
from callbacks.gradient_noise import GradientNoise
from callbacks.schedules.lr_schedule import LRSchedule


def _schedule(fn):
    def make(plot=True, **shape):
        return LRSchedule(functools.partial(fn, **shape), plot=plot)
    return make


OneCycle, Cyclic = _schedule(schedules.one_cycle), _schedule(schedules.cyclic)
Piecewise, Warmup = _schedule(schedules.piecewise), _schedule(schedules.warmup)

REPO = Path(__file__).resolve().parents[1]
N_BATCHES, BATCH, EPOCHS = 8, 4, 3
REL = 1e-6

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --------------------------------------------------------------------------- tiny training set-up
def _batches(n=N_BATCHES, seed=0):
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


def _momentum(group):
    if "betas" in group:
        return group["betas"][0]
    return group.get("momentum")


class TinyModule(pl.LightningModule):
    """Linear classifier; records (global_step, [(lr, momentum) per group]) as the optimizer holds them."""

    def __init__(self, optimizer="sgd", momentum=0.9, lr_scales=(1.0, 2.0), n_batches=N_BATCHES):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(4, 3)
        self.loader = ResumableLoader(_batches(n_batches))
        self.optimizer_name, self.momentum, self.lr_scales = optimizer, momentum, lr_scales
        self.records = []

    def train_dataloader(self):
        return self.loader

    def training_step(self, batch, batch_idx):
        self.loader.consumed = batch_idx + 1
        groups = self.trainer.optimizers[0].param_groups
        self.records.append((self.trainer.global_step, [(g["lr"], _momentum(g)) for g in groups]))
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


def _torch_sequence(make_scheduler, n, kind="sgd"):
    """(lr, momentum) that a torch scheduler sets for optimizer steps 0..n-1."""
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9) if kind == "sgd" else torch.optim.Adam(params, lr=0.1)
    sched = make_scheduler(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            out.append((opt.param_groups[0]["lr"], _momentum(opt.param_groups[0])))
            sched.step()
    return out


def _close(a, b, rel=REL):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def assert_records(records, expected, acc, lr_scales, momentum_fixed=None):
    """Every micro-batch of optimizer step s saw expected[s] (lr times the group's lr_scale), in order."""
    total = len(expected)
    assert [s for s, _ in records] == [s for s in range(total) for _ in range(acc)]
    for step, groups in records:
        lr_e, m_e = expected[step]
        for (lr, m), scale in zip(groups, lr_scales):
            assert _close(lr, lr_e * scale), (step, lr, lr_e * scale)
            assert _close(m, m_e if m_e is not None else momentum_fixed), (step, m, m_e)


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc, {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


# --------------------------------------------------------------------------- per-step values
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("acc", [1, 2])
def test_one_cycle_per_step_equals_torch(tmp_path, kind, acc):
    m = fit(tmp_path, [OneCycle(max_lr=0.5, plot=False)], acc=acc, optimizer=kind)
    total = math.ceil(N_BATCHES / acc) * EPOCHS  # independent of the trainer's estimate
    expected = _torch_sequence(
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
    expected = _torch_sequence(
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
    ea, scalars = _scalars(logger.log_dir)
    for i in range(2):
        for j, tag in enumerate([f"train/lr/pg{i}", f"train/momentum/pg{i}"]):
            events = scalars[tag]
            assert [s for s, _ in events] == list(range(total)), tag  # exactly once per optimizer step
            for s, v in events:
                assert _close(v, set_values[s][i][j]), (tag, s, v)
        # Lightning's LearningRateMonitor reads the same values (it logs once per micro-batch)
        for j, tag in enumerate([f"lr-SGD/pg{i + 1}", f"lr-SGD/pg{i + 1}-momentum"]):
            events = scalars[tag]
            assert sorted({s for s, _ in events}) == list(range(total)), tag
            for s, v in events:
                assert _close(v, set_values[s][i][j]), (tag, s, v)
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
    _, scalars = _scalars(logger.log_dir)
    steps = [s for s, _ in scalars["train/lr"]]
    assert steps == [s for s in range(total) if (s + 1) % 3 == 0]
    assert sorted({s for s, _ in scalars["lr-SGD"]}) == steps
    held = {s: g[0][0] for s, g in module.records}
    assert all(_close(v, held[s]) for s, v in scalars["train/lr"])
    assert sorted(held) == list(range(total))


def test_planned_curves_equal_applied_values(tmp_path):
    cb = OneCycle(max_lr=0.5, plot=False)
    m = fit(tmp_path, [cb], acc=1)
    lrs, moms = cb.planned_curves((1.0, 2.0))
    assert [g[1][0] for _, g in m.records] == lrs[1]
    assert [g[0][1] for _, g in m.records] == moms


# --------------------------------------------------------------------------- resume
class Crash(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def _schedule_and_noise(max_lr=0.5, seed=3):
    return [OneCycle(max_lr=max_lr, plot=False), GradientNoise(eta=0.01, gamma=0.55, seed=seed)]


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def resumed_acc1(tmp_path_factory):
    """Uninterrupted run, a run crashed at step 12 (checkpoints every 5 steps: last at step 10, mid-epoch 1),
    and its resume from the step-10 checkpoint."""
    root = tmp_path_factory.mktemp("resume1")
    logger = TensorBoardLogger(save_dir=str(root), name="ref", version=0)
    ref = fit(root / "ref", _schedule_and_noise(), logger=logger, lr_scales=(1.0,))
    ckpt_dir = root / "ckpt"
    crashed = TinyModule(lr_scales=(1.0,))
    trainer = make_trainer(root / "crash", [*_schedule_and_noise(), Crash(12), ModelCheckpoint(
        dirpath=str(ckpt_dir), filename="{step}", every_n_train_steps=5, save_top_k=-1)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.fit(crashed)
    ckpt = str(ckpt_dir / "step=10.ckpt")
    resumed = fit(root / "resumed", _schedule_and_noise(), ckpt_path=ckpt, lr_scales=(1.0,))
    return SimpleNamespace(ref=ref, crashed=crashed, resumed=resumed, ckpt=ckpt, log_dir=logger.log_dir)


def test_resume_in_process_same_sequence_and_weights(resumed_acc1):
    r = resumed_acc1
    assert r.crashed.records == r.ref.records[:12]
    assert r.resumed.records[0][0] == 10
    assert r.resumed.records == r.ref.records[10:]
    ref_w, res_w = _weights(r.ref), _weights(r.resumed)
    assert all(torch.equal(ref_w[k], res_w[k]) for k in ref_w)


def test_single_group_names_and_noise_sigma_logged(resumed_acc1):
    _, scalars = _scalars(resumed_acc1.log_dir)
    total = N_BATCHES * EPOCHS
    lrs = [g[0][0] for _, g in resumed_acc1.ref.records]
    assert [s for s, _ in scalars["train/lr"]] == list(range(total))
    assert all(_close(v, lrs[s]) for s, v in scalars["train/lr"])
    assert "train/momentum" in scalars
    sig = scalars["train/grad_noise_sigma"]
    assert [s for s, _ in sig] == list(range(total))
    assert all(_close(v, math.sqrt(0.01 / (1 + s) ** 0.55)) for s, v in sig)


def test_gradient_noise_changes_training_and_is_seeded(tmp_path, resumed_acc1):
    ref_w = _weights(resumed_acc1.ref)
    no_noise = _weights(fit(tmp_path / "a", [OneCycle(max_lr=0.5, plot=False)], lr_scales=(1.0,)))
    same_seed = _weights(fit(tmp_path / "b", _schedule_and_noise(seed=3), lr_scales=(1.0,)))
    other_seed = _weights(fit(tmp_path / "c", _schedule_and_noise(seed=4), lr_scales=(1.0,)))
    assert all(torch.equal(ref_w[k], same_seed[k]) for k in ref_w)
    assert not torch.allclose(ref_w["net.weight"], no_noise["net.weight"], atol=1e-6)
    assert not torch.allclose(ref_w["net.weight"], other_seed["net.weight"], atol=1e-6)


@pytest.mark.parametrize(
    "callbacks,epochs,expected",
    [
        (lambda: _schedule_and_noise(max_lr=0.6), EPOCHS, r"scheduler.max_lr: checkpoint 0\.5, config 0\.6"),
        (lambda: _schedule_and_noise(), EPOCHS + 1, r"total_steps: checkpoint 24, config 32"),
        (lambda: [Cyclic(base_lr=0.01, max_lr=0.5, plot=False), GradientNoise(eta=0.01, seed=3)], EPOCHS,
         r"schedule: checkpoint 'one_cycle', config 'cyclic'"),
        (lambda: [OneCycle(max_lr=0.5, pct_start=0.3, three_phase=False, plot=False),
                  GradientNoise(eta=0.01, seed=3)], EPOCHS,
         r"scheduler.pct_start: checkpoint 0\.45, config 0\.3; scheduler.three_phase: checkpoint True, config False"),
        (lambda: _schedule_and_noise(seed=5), EPOCHS, r"GradientNoise.*seed: checkpoint 3, config 5"),
    ],
)
def test_resume_refuses_different_schedule(tmp_path, resumed_acc1, callbacks, epochs, expected):
    with pytest.raises(ValueError, match=expected):
        fit(tmp_path, callbacks(), epochs=epochs, ckpt_path=resumed_acc1.ckpt, lr_scales=(1.0,))


def test_resume_refuses_checkpoint_without_schedule_state(tmp_path, resumed_acc1):
    ckpt = torch.load(resumed_acc1.ckpt, weights_only=False)
    del ckpt["callbacks"]["LRSchedule"]
    path = tmp_path / "no_schedule.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="no LR schedule state"):
        fit(tmp_path, _schedule_and_noise(), ckpt_path=str(path), lr_scales=(1.0,))


class KillAt(Callback):
    """SIGKILL this process at optimizer step `step`, micro-batch `micro` (after dumping the records so far)."""

    def __init__(self, step, micro, records_file):
        self.step, self.micro, self.records_file = step, micro, records_file

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and batch_idx % trainer.accumulate_grad_batches == self.micro:
            with open(self.records_file, "w") as f:
                json.dump(pl_module.records, f)
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)


def run_killed(root):
    """Body of the subprocess of the SIGKILL test: acc 2 (4 steps per epoch), checkpoints every 3 steps,
    killed at step 7 between the two micro-batches (mid-epoch 1, last checkpoint: step 6)."""
    root = Path(root)
    module = TinyModule(lr_scales=(1.0,))
    ckpt = ModelCheckpoint(dirpath=str(root / "ckpt"), filename="{step}", every_n_train_steps=3, save_top_k=-1)
    make_trainer(root, [*_schedule_and_noise(), KillAt(7, 1, str(root / "records.json")), ckpt], acc=2).fit(module)


def test_resume_after_sigkill_same_sequence_and_weights(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {str(Path(__file__).parent)!r}]
        import test_lr_schedule
        test_lr_schedule.run_killed({str(tmp_path)!r})
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "ckpt" / "*.ckpt"))) == \
        ["step=3.ckpt", "step=6.ckpt"]
    killed = json.loads((tmp_path / "records.json").read_text())

    ref = fit(tmp_path / "ref", _schedule_and_noise(), acc=2, lr_scales=(1.0,))
    resumed = fit(tmp_path / "resumed", _schedule_and_noise(), acc=2, lr_scales=(1.0,),
                  ckpt_path=str(tmp_path / "ckpt" / "step=6.ckpt"))
    as_lists = [[s, [list(v) for v in g]] for s, g in ref.records]
    assert killed == as_lists[:len(killed)] and len(killed) == 15  # 7 steps x 2 micro-batches + 1
    assert resumed.records == ref.records[12:]  # from step 6 on, as if never stopped
    ref_w, res_w = _weights(ref), _weights(resumed)
    assert all(torch.equal(ref_w[k], res_w[k]) for k in ref_w)


# --------------------------------------------------------------------------- bad input
def test_bad_shape_fails_when_the_callback_is_built():
    with pytest.raises(ValueError, match=r"scheduler.pct_start must be in \(0, 0.5\)"):
        OneCycle(max_lr=0.1, pct_start=0.7)
    with pytest.raises(ValueError, match="scheduler.max_lr is 'auto'"):
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
        (lambda: [OneCycle(max_lr=0.1, plot=False)], {"n_batches": 2}, r"scheduler.pct_start \(0.45\) x total_steps must be > 1"),
    ],
)
def test_bad_input_at_train_start(tmp_path, callbacks, module_kw, expected):
    epochs = 1 if module_kw.get("n_batches") == 2 else EPOCHS
    with pytest.raises(ValueError, match=expected):
        fit(tmp_path, callbacks(), epochs=epochs, **module_kw)


def test_momentum_free_optimizer_is_fine_without_momentum_schedule(tmp_path):
    m = fit(tmp_path, [OneCycle(max_lr=0.2, cycle_momentum=False, plot=False)], optimizer="adagrad")
    assert [g[0][1] for _, g in m.records] == [None] * 24  # nothing switched on


# --------------------------------------------------------------------------- gradient noise unit checks
def test_gradient_noise_distribution_and_state():
    p = nn.Parameter(torch.zeros(200_000))
    opt = torch.optim.SGD([p], lr=0.1)

    def noise(cb, step):
        p.grad = torch.zeros_like(p)
        cb.on_before_optimizer_step(SimpleNamespace(global_step=step, loggers=[]), None, opt)
        return p.grad.clone()

    cb = GradientNoise(eta=0.3, gamma=0.55, seed=1)
    for step in (0, 50):
        g = noise(cb, step)
        sigma = math.sqrt(0.3 / (1 + step) ** 0.55)
        assert g.std().item() == pytest.approx(sigma, rel=0.01)
        assert abs(g.mean().item()) < 5 * sigma / math.sqrt(g.numel())
    state = cb.state_dict()
    nxt = noise(cb, 51)
    resumed = GradientNoise(eta=0.3, gamma=0.55, seed=1)
    resumed.load_state_dict(state)
    assert torch.equal(noise(resumed, 51), nxt)  # continues the same sequence
    fresh = GradientNoise(eta=0.3, gamma=0.55, seed=1)
    assert torch.equal(noise(fresh, 0), noise(GradientNoise(eta=0.3, gamma=0.55, seed=1), 0))


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
