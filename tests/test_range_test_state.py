"""callbacks.range_test.state: bitwise restore (at train start and mid-training, SGD/Adam, fp16 grad scaler,
failures), directly and through the callback."""
from __future__ import annotations

import random

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from callbacks.range_test.loss import LRRangeTest
from callbacks.range_test.state import preserved_state
from range_fixtures import (Snap, SweepThenTrain, TinyDM, TinyNet, assert_same_state, assert_tensors_equal, capture,
                            fit, trainer)

torch.set_num_threads(1)


class MidRun(LRRangeTest):
    """Runs the sweep at the start of epoch 1 (global_step > 0, optimizer state populated)."""

    def on_train_start(self, trainer, pl_module):
        pass

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            self.step_at_run = trainer.global_step
            self.before = capture(trainer, pl_module)
            self.run(trainer, pl_module)
            self.after = capture(trainer, pl_module)


# ----------------------------------------------------------------------------- restore
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_restore_is_bitwise_at_train_start(tmp_path, opt):
    before, after = Snap(), Snap()
    rt = SweepThenTrain(num_steps=30, min_lr=1e-4, max_lr=1.0, seed=7)
    tr, model = fit(tmp_path, opt=opt, callbacks=[before, rt, after])
    rng_after = torch.get_rng_state()
    assert_same_state(before.state, after.state)
    assert any("running_mean" in k for k in before.state["model"])  # BatchNorm statistics are covered
    # the sweep really trained: 30 steps evaluated the loss at 30 different LRs and the loss moved
    assert len({tuple(x) for x in model.lr_trace[:30]}) == 30
    assert len(rt.result.losses) == 30 and np.ptp(rt.result.losses) > 0
    # the run is indistinguishable from one without the sweep: first batch (augmentation included), final weights
    tr0, model0 = fit(tmp_path, opt=opt)
    assert_tensors_equal(model.first_batch, model0.first_batch)
    assert_tensors_equal(model.state_dict(), model0.state_dict())
    assert_tensors_equal(tr.optimizers[0].state_dict(), tr0.optimizers[0].state_dict())
    assert torch.equal(rng_after, torch.get_rng_state()) and tr.global_step == tr0.global_step > 0


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_restore_is_bitwise_after_some_training(tmp_path, opt):
    rt = MidRun(num_steps=20, min_lr=1e-3, max_lr=1.0, seed=None)
    tr, model = fit(tmp_path, opt=opt, callbacks=[rt], max_epochs=3)
    assert rt.step_at_run > 0
    assert len(rt.before["opt_state"]["state"]) > 0  # momentum buffers / Adam moments existed and were restored
    assert_same_state(rt.before, rt.after)
    tr0, model0 = fit(tmp_path, opt=opt, max_epochs=3)
    assert_tensors_equal(model.state_dict(), model0.state_dict())
    assert_tensors_equal(tr.optimizers[0].state_dict(), tr0.optimizers[0].state_dict())


def test_restore_with_mixed_precision_grad_scaler(tmp_path):
    from pytorch_lightning.plugins.precision import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)

    class ScaleTrace(TinyNet):
        def compute_loss(self, batch):
            self.scales = getattr(self, "scales", []) + [self.trainer.precision_plugin.scaler.get_scale()]
            return super().compute_loss(batch)

    before, after = Snap(), Snap()
    rt = SweepThenTrain(num_steps=20, min_lr=1e-4, max_lr=1.0)
    pl.seed_everything(0, verbose=False)
    model = ScaleTrace()
    tr = trainer(tmp_path, [before, rt, after], plugins=[MixedPrecision("16-mixed", device="cpu", scaler=scaler)],
                 max_epochs=1)
    tr.fit(model, datamodule=TinyDM())
    assert len(set(model.scales[:20])) > 1  # the scaler's scale changed during the sweep ...
    assert before.state["scaler"]["scale"] == 2.0**10
    assert_same_state(before.state, after.state)  # ... and was put back


class _Boom(RuntimeError):
    pass


def test_preserved_state_restores_on_failure_and_reraises(tmp_path):
    """Direct use of the context manager: weights, grads, modes, optimizer, RNGs and datamodule state come back
    even when the body raises, and the exception propagates unchanged."""
    class StatefulDM(TinyDM):
        def __init__(self):
            super().__init__()
            self.counter = 0

        def state_dict(self):
            return {"counter": self.counter}

        def load_state_dict(self, state):
            self.counter = state["counter"]

    class Probe(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            self.before = capture(trainer, pl_module)
            opt = trainer.optimizers[0]
            with pytest.raises(_Boom):
                with preserved_state(pl_module, trainer.datamodule, trainer):
                    for p in pl_module.parameters():
                        p.data.add_(1.0)
                        p.grad = torch.ones_like(p)
                    opt.param_groups[0]["lr"] = 123.0
                    opt.param_groups[0]["extra"] = 1
                    pl_module.eval()
                    trainer.datamodule.counter = 99
                    torch.rand(5), np.random.rand(), random.random()
                    raise _Boom("sweep failed")
            self.after = capture(trainer, pl_module)
            self.counter = trainer.datamodule.counter
            trainer.should_stop = True

    probe, dm = Probe(), StatefulDM()
    fit(tmp_path, callbacks=[probe], dm=dm, max_epochs=1)
    assert_same_state(probe.before, probe.after)
    assert probe.counter == 0
