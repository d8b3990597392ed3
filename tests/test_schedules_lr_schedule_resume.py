"""callbacks.schedules.lr_schedule (LRSchedule) on resume: in process and after SIGKILL the same LR sequence and
weights as an uninterrupted run (with GradientNoise, whose seeded noise resumes too); a checkpoint whose schedule
differs, or that has none, is refused."""
from __future__ import annotations

import glob
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from callbacks.gradient_noise import GradientNoise
from schedule_fixtures import (
    EPOCHS, N_BATCHES, REPO, Cyclic, OneCycle, TinyModule, close, fit, make_trainer, read_scalars,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


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
    _, scalars = read_scalars(resumed_acc1.log_dir)
    total = N_BATCHES * EPOCHS
    lrs = [g[0][0] for _, g in resumed_acc1.ref.records]
    assert [s for s, _ in scalars["train/lr"]] == list(range(total))
    assert all(close(v, lrs[s]) for s, v in scalars["train/lr"])
    assert "train/momentum" in scalars
    sig = scalars["train/grad_noise_sigma"]
    assert [s for s, _ in sig] == list(range(total))
    assert all(close(v, math.sqrt(0.01 / (1 + s) ** 0.55)) for s, v in sig)


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
        import test_schedules_lr_schedule_resume as m
        m.run_killed({str(tmp_path)!r})
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
