"""callbacks.range_test.finder (find_lr): the phase leaves nothing behind (a later fit is bitwise the same as
without it; what the fit's own hooks change is undone too, also when the sweep fails), forced trainer settings, the
accuracy test on plain dataloaders, 2-process DDP agrees."""
from __future__ import annotations

import functools
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
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from callbacks.range_test.accuracy import AccuracyRangeTest
from callbacks.range_test.loss import LRRangeTest
from callbacks.range_test.finder import RangeTestResult, find_lr
from datamodules.synthetic import SyntheticDataModule
from lightning_modules.classifier import Classifier
from lightning_modules.networks import SmallNet
from range_fixtures import Regression, TinyDM, TinyNet, assert_tensors_equal, dataset

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)
pytestmark = [pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
              pytest.mark.filterwarnings("ignore:.*number of training batches.*")]

RUN = dict(accelerator="cpu", devices=1, max_epochs=2, limit_val_batches=0, deterministic=True)


def plain_fit(tmp_path, model, dm, **kw):
    tr = pl.Trainer(**{**RUN, **kw}, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    tr.fit(model, datamodule=dm)
    return tr


def _tiny():
    pl.seed_everything(0, verbose=False)
    return TinyNet(), TinyDM()


def _synthetic():
    pl.seed_everything(0, verbose=False)
    dm = SyntheticDataModule(num_train=64, num_val=32, batch_size=16, image_size=16, num_classes=4)
    model = Classifier(SmallNet(width=4), dm.heads,
                       optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9))
    return model, dm


@pytest.mark.parametrize("make", [_tiny, _synthetic], ids=["tiny", "synthetic"])
def test_find_lr_then_fit_equals_fit_alone(tmp_path, make):
    model0, dm0 = make()
    plain_fit(tmp_path, model0, dm0)
    model, dm = make()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    result = find_lr(model, dm, LRRangeTest(num_steps=20, min_lr=1e-4, max_lr=1.0), **RUN,
                     default_root_dir=str(tmp_path))
    assert len(result.losses) >= 10 and np.ptp(result.losses) > 0  # it really swept
    assert_tensors_equal(model.state_dict(), init)  # the model is exactly as before ...
    assert torch.equal(torch.get_rng_state(), rng[0]) and np.array_equal(np.random.get_state()[1], rng[1])
    assert random.getstate() == rng[2]  # ... and so are the global RNGs
    plain_fit(tmp_path, model, dm)
    assert_tensors_equal(model.state_dict(), model0.state_dict())  # the phase left nothing behind


def test_find_lr_notebook_usage_default_test_and_forced_trainer_keys(tmp_path):
    pl.seed_everything(0, verbose=False)
    model, dm = TinyNet(), TinyDM()
    model.eval()
    logger = TensorBoardLogger(str(tmp_path), name="must_not_exist")
    result = find_lr(model, dm, default_root_dir=str(tmp_path), logger=logger, enable_progress_bar=True,
                     callbacks=[pl.Callback()], min_epochs=3)
    assert isinstance(result, RangeTestResult) and result.kind == "loss" and result.rule == "blend"
    assert result.settings["num_steps"] == 200 and result.lr == result.suggestions["blend"]
    factors = sorted(t["factor"] for t in result.trials)  # the default trials: 0.3x, 1x, 3x, 10x loss_min (capped)
    assert factors[0] == pytest.approx(0.3) and all(f in (0.3, 1.0, 3.0, 10.0) for f in map(lambda v: round(v, 6), factors))
    assert isinstance(result.plot(), Figure)
    assert not model.training  # the module mode is back
    assert not (tmp_path / "must_not_exist").exists()  # logging forced off, nothing written
    assert model.train_lrs == []  # min_epochs did not force a training epoch


def test_find_lr_with_dataloaders_and_accuracy_test(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = TinyNet()
    at = AccuracyRangeTest(min_lr=0.0, max_lr=2.0, num_steps=12, eval_every=4, eval_batches=1)
    result = find_lr(model, range_test=at, train_dataloaders=DataLoader(dataset(64, 0), batch_size=8),
                     val_dataloaders=DataLoader(dataset(32, 1), batch_size=8), accelerator="cpu",
                     default_root_dir=str(tmp_path))
    assert result is at.result and result.kind == "accuracy" and result.base_lr is not None
    assert [e["step"] for e in result.evals] == [-1, 3, 7, 11] and result.eval_images == 8
    fig = result.plot()
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) >= 3  # the accuracy curve and the two bounds
    with pytest.raises(TypeError, match="range_test must be an LRRangeTest or AccuracyRangeTest"):
        find_lr(model, range_test=pl.Callback(), train_dataloaders=DataLoader(dataset(8, 0)))


# ----------------------------------------------------------------------------- 2-process DDP (gloo, CPU)
DDP_SCRIPT = """
import json, os, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import torch, pytorch_lightning as pl
torch.set_num_threads(1)
from range_fixtures import TinyNet, TinyDM
from callbacks.range_test.loss import LRRangeTest
from callbacks.range_test.finder import find_lr

class Net(TinyNet):
    def chance_loss(self):  # every trial ends below 10% of it (each reads validation, v21), none below 1%
        return 30.0

class Probe(LRRangeTest):
    def _one_sweep(self, trainer, pl_module, stream, lrs):
        self.start = torch.cat([p.detach().flatten() for p in pl_module.parameters()]).tolist()
        out = super()._one_sweep(trainer, pl_module, stream, lrs)
        self.swept = torch.cat([p.detach().flatten() for p in pl_module.parameters()]).tolist()
        self.local = out["local_losses"]  # this rank's own losses (the result is rank 0's, broadcast)
        return out

if __name__ == "__main__":
    out = sys.argv[1]
    pl.seed_everything(0, verbose=False)
    model = Net()
    init = [t.clone() for t in model.state_dict().values()]
    rt = Probe(num_steps=15, min_lr=1e-4, max_lr=10.0, trial_min_steps=4, trial_max_steps=8, trial_min_images=96,
               trial_val_batches=2)
    res = find_lr(model, TinyDM(), rt, strategy="ddp", accelerator="cpu", devices=2, default_root_dir=out)
    restored = all(torch.equal(a, b) for a, b in zip(init, model.state_dict().values()))
    rank = torch.distributed.get_rank()
    with open(os.path.join(out, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"lr": res.lr, "rule": res.rule, "suggestions": res.suggestions, "losses": res.losses,
                   "status": res.status, "local": rt.local, "restored": restored, "swept": rt.swept, "start": rt.start,
                   "trials": res.trials}}, f)
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
    assert r0["lr"] == r1["lr"] and r0["suggestions"] == r1["suggestions"] and r0["status"] == r1["status"]
    # the step sizes were measured on the synchronised weights: both ranks blend with the same update point
    assert r0["rule"] == r1["rule"] == "blend"
    assert r0["lr"] == pytest.approx(math.sqrt(r0["suggestions"]["trials"] * r0["suggestions"]["update"]))
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) >= 4
    # the recorded loss is the mean of the two ranks' own losses (which differ: different shards)
    assert r0["local"] != r1["local"]
    np.testing.assert_allclose(r0["losses"], (np.array(r0["local"]) + np.array(r1["local"])) / 2, rtol=1e-6)
    assert r0["restored"] and r1["restored"]
    # gradients were averaged across ranks during the sweep: the swept weights agree (and moved)
    np.testing.assert_array_equal(r0["swept"], r1["swept"])
    assert r0["start"] == r1["start"] and r0["swept"] != r0["start"]
    # the max_lr trials: the same on both ranks; 96 images at 8 per rank x 2 ranks = 6 steps; validation scores
    # summed over both ranks' shards
    assert r0["trials"] == r1["trials"] and r0["trials"]
    assert {(t["planned_steps"], t["images_per_step"]) for t in r0["trials"]} == {(6, 16)}
    done = [t for t in r0["trials"] if t["score"] != float("inf")]
    assert done and all(0.0 <= t["val_acc"] <= 1.0 and t["val_images"] == 32 for t in done)  # 2 x 8 per rank


def test_find_lr_failure_leaves_model_rngs_and_modes_as_they_were(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = Regression()
    model.eval()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="exploded within the first"):
        find_lr(model, range_test=LRRangeTest(num_steps=20, min_lr=1e4, max_lr=1e7), accelerator="cpu",
                train_dataloaders=DataLoader(dataset(64, 0), batch_size=16, shuffle=True),
                default_root_dir=str(tmp_path))
    assert model.calls >= 2  # it stepped before failing ...
    assert_tensors_equal(model.state_dict(), init)  # ... and undid it
    assert torch.equal(torch.get_rng_state(), rng) and not model.training


def test_find_lr_undoes_what_the_fit_around_the_sweep_changes(tmp_path):
    """A data-dependent init in on_fit_start (drawing from the global RNG), a datamodule whose setup moves its
    state, gradients the model held before: find_lr's fit changes all of them before the sweep starts, and all
    come back."""
    class DataInitNet(TinyNet):
        def on_fit_start(self):
            with torch.no_grad():
                self.net[0].weight.normal_()

    class CountingDM(TinyDM):
        def __init__(self):
            super().__init__()
            self.setups = 0

        def setup(self, stage):
            self.setups += 1

        def state_dict(self):
            return {"setups": self.setups}

        def load_state_dict(self, state):
            self.setups = state["setups"]

    pl.seed_everything(0, verbose=False)
    model, dm = DataInitNet(), CountingDM()
    model.net[0].weight.grad = torch.ones_like(model.net[0].weight)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    find_lr(model, dm, LRRangeTest(num_steps=12, min_lr=1e-4, max_lr=1.0), **RUN, default_root_dir=str(tmp_path))
    assert_tensors_equal(model.state_dict(), init)
    assert torch.equal(model.net[0].weight.grad, torch.ones_like(model.net[0].weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "net.0.weight")
    assert dm.setups == 0 and torch.equal(torch.get_rng_state(), rng)
