"""callbacks.range_test.engine: the sweep's LRs (sweep_lrs), seeding, one LR per optimizer step with accumulation,
clipping and lr_scale, private batches (a persistent-workers loader keeps its epoch iterator; the batch hooks run
where Lightning runs them)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from callbacks.range_test.engine import seed_rngs, sweep_lrs
from callbacks.range_test.loss import LRRangeTest
from range_fixtures import SweepThenTrain, TinyDM, TinyNet, assert_tensors_equal, fit, trainer

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- sweep_lrs / seeding
def test_sweep_lrs_exp_and_linear():
    np.testing.assert_allclose(sweep_lrs(1e-4, 1.0, 5, "exp"), [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)
    np.testing.assert_allclose(sweep_lrs(0.0, 1.0, 5, "linear"), [0, 0.25, 0.5, 0.75, 1.0], rtol=1e-12)
    lrs = sweep_lrs(1e-5, 10.0, 200, "exp")
    assert lrs[0] == 1e-5 and lrs[-1] == 10.0 and np.all(np.diff(np.log10(lrs)) > 0)
    with pytest.raises(ValueError, match="range_test.mode must be 'exp' or 'linear'"):
        sweep_lrs(1e-4, 1.0, 5, "cosine")


def test_seed_rngs_seeds_python_numpy_torch():
    seed_rngs(5)
    a = (random.random(), float(np.random.rand()), torch.rand(1).item())
    seed_rngs(5)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == a
    seed_rngs(6)
    assert random.random() != a[0]


# ----------------------------------------------------------------------------- private batches
def test_persistent_worker_loader_keeps_its_epoch_iterator(tmp_path):
    """A persistent-workers DataLoader shares one iterator; the sweep must not reset the one Lightning holds."""
    class PersistentDM(TinyDM):
        def train_dataloader(self):
            return DataLoader(self.train_ds, batch_size=8, shuffle=True, num_workers=1, persistent_workers=True)

    rt = SweepThenTrain(num_steps=15, min_lr=1e-4, max_lr=1.0)
    _, model = fit(tmp_path, callbacks=[rt], dm=PersistentDM())
    _, model0 = fit(tmp_path, dm=PersistentDM())
    assert_tensors_equal(model.first_batch, model0.first_batch)
    assert_tensors_equal(model.state_dict(), model0.state_dict())


class HookedNet(TinyNet):
    """Records which before-transfer hook prepared each batch."""

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.seen = getattr(self, "seen", []) + ["module"]
        return batch


class HookedDM(TinyDM):
    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.seen = getattr(self, "seen", []) + ["datamodule"]
        return batch


@pytest.mark.parametrize("dm_hook", [False, True])
def test_batches_go_through_the_before_transfer_hook_lightning_would_call(tmp_path, dm_hook):
    """The datamodule's on_before_batch_transfer when it overrides it (Lightning's rule, also when both do), else
    the module's; once per batch, as in the training loop."""
    pl.seed_everything(0, verbose=False)
    model, dm = HookedNet(), (HookedDM() if dm_hook else TinyDM())
    rt = LRRangeTest(num_steps=12, min_lr=1e-4, max_lr=1.0, diverge_factor=None, trial_factors=None)  # the sweep alone
    trainer(tmp_path, [rt]).fit(model, datamodule=dm)
    owner, other = (dm, model) if dm_hook else (model, dm)
    assert getattr(owner, "seen") == [("datamodule" if dm_hook else "module")] * 12
    assert getattr(other, "seen", []) == []


# ----------------------------------------------------------------------------- one step: accumulation, lr_scale, clipping
@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_one_lr_per_optimizer_step_with_accumulation_lr_scale_and_clipping(tmp_path, mode, monkeypatch):
    from pytorch_lightning.plugins.precision import Precision

    clipped = []
    original = Precision.clip_gradients
    monkeypatch.setattr(Precision, "clip_gradients",
                        lambda self, opt, clip_val=0.0, gradient_clip_algorithm=None: (
                            clipped.append((clip_val, gradient_clip_algorithm.value)),
                            original(self, opt, clip_val, gradient_clip_algorithm)))
    rt = LRRangeTest(num_steps=12, min_lr=1e-4, max_lr=1e-1, mode=mode, diverge_factor=None,
                     trial_factors=None)  # the sweep alone
    clip = {"gradient_clip_val": 0.5, "gradient_clip_algorithm": "value" if mode == "linear" else "norm"}
    tr, model = fit(tmp_path, callbacks=[rt], accumulate_grad_batches=2, **clip)
    expected = np.geomspace(1e-4, 1e-1, 12) if mode == "exp" else np.linspace(1e-4, 1e-1, 12)
    trace = np.array(model.lr_trace)
    assert trace.shape == (24, 2)  # two micro-batches per optimizer step, one LR per optimizer step
    np.testing.assert_allclose(trace[:, 0], np.repeat(expected, 2), rtol=1e-12)
    np.testing.assert_allclose(trace[:, 1], 2.0 * np.repeat(expected, 2), rtol=1e-12)  # lr_scale honoured
    np.testing.assert_allclose(rt.result.lrs, expected, rtol=1e-12)
    assert rt.result.lrs[0] == 1e-4 and rt.result.lrs[-1] == 1e-1
    assert clipped == [(0.5, clip["gradient_clip_algorithm"])] * 12  # clipping once per optimizer step
    # the callback is a phase of its own: it stopped the fit before any training step
    assert tr.global_step == 0 and model.first_batch is None
