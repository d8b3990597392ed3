"""callbacks.range_test.progress: the range test shows its progress (steps done of the total, ETA, LR, smoothed
loss) for the sweep and the max_lr trials when the trainer's progress bar is on, and prints nothing when it is off
or on another rank. Under pytest stdout is not a terminal: rich writes the finished lines once, as into a pipe."""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from rich.console import Console
from torch.utils.data import DataLoader

from callbacks.range_test.accuracy import AccuracyRangeTest
from callbacks.range_test.finder import find_lr
from callbacks.range_test.loss import LRRangeTest
from callbacks.range_test.progress import RangeTestProgressBar
from range_fixtures import TinyDM, TinyNet, dataset

torch.set_num_threads(1)
pytestmark = [pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
              pytest.mark.filterwarnings("ignore:.*number of training batches.*")]

PROGRESS_LINE = re.compile(r"(LR range test|max_lr trials|accuracy range test) +\S* +(\d+)/(\d+) +eta ")


def progress_lines(text: str) -> dict:
    """description -> (steps done, steps in total) of every progress line in ``text``."""
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in PROGRESS_LINE.finditer(text)}


def small_loss_test() -> LRRangeTest:
    # no stop rule and a gentle range: the sweep runs all 12 steps; 2 trials of 4 steps follow
    return LRRangeTest(min_lr=1e-3, max_lr=0.5, num_steps=12, diverge_factor=None, trial_factors=[1, 3],
                       trial_min_steps=4, trial_max_steps=4)


def test_the_sweep_and_the_trials_show_their_steps_eta_lr_and_loss(tmp_path, capsys):
    pl.seed_everything(0, verbose=False)
    find_lr(TinyNet(), TinyDM(), small_loss_test(), accelerator="cpu", default_root_dir=str(tmp_path))
    out = capsys.readouterr().out
    assert progress_lines(out) == {"LR range test": (12, 12), "max_lr trials": (8, 8)}, out
    sweep = next(line for line in out.splitlines() if line.startswith("LR range test"))
    assert re.search(r"eta \d+:\d\d:\d\d lr 0\.5 loss \d", sweep), sweep  # the last step's LR and smoothed loss
    assert re.search(r"2/2 @\S+ lr \S+ loss \d", out), out  # the trials line names the trial and its peak


def test_no_progress_with_the_progress_bar_off(tmp_path, capsys):
    pl.seed_everything(0, verbose=False)
    result = find_lr(TinyNet(), TinyDM(), small_loss_test(), accelerator="cpu", default_root_dir=str(tmp_path),
                     enable_progress_bar=False)
    assert len(result.lrs) == 12 and len(result.trials) == 2  # it ran, silently
    out = capsys.readouterr().out
    assert progress_lines(out) == {} and "eta" not in out and "LR range test" not in out, out


def test_a_sweep_that_stops_early_says_where(tmp_path, capsys):
    pl.seed_everything(0, verbose=False)
    test = LRRangeTest(min_lr=1e-3, max_lr=1e6, num_steps=20, trial_factors=None)  # blows up well before 1e6
    result = find_lr(TinyNet(), TinyDM(), test, accelerator="cpu", default_root_dir=str(tmp_path))
    out = capsys.readouterr().out
    done = result.stop_index + 1
    assert progress_lines(out) == {"LR range test": (done, done)}, out
    assert f"stopped at {done}/20" in out and "max_lr trials" not in out


def test_the_accuracy_test_shows_its_steps_and_accuracy(tmp_path, capsys):
    pl.seed_everything(0, verbose=False)
    test = AccuracyRangeTest(min_lr=0.0, max_lr=1.0, num_steps=12, eval_every=4, eval_batches=1)
    find_lr(TinyNet(), range_test=test, train_dataloaders=DataLoader(dataset(64, 0), batch_size=8),
            val_dataloaders=DataLoader(dataset(32, 1), batch_size=8), accelerator="cpu",
            default_root_dir=str(tmp_path))
    out = capsys.readouterr().out
    assert progress_lines(out) == {"accuracy range test": (12, 12)} and re.search(r"acc 0?\.?\d", out), out


def test_other_ranks_and_a_disabled_bar_print_nothing():
    buffer = io.StringIO()
    bar = RangeTestProgressBar(console=Console(file=buffer, width=100))
    bar.setup(SimpleNamespace(is_global_zero=False), None, "fit")  # Lightning's ProgressBar: off on rank > 0
    assert not bar.is_enabled
    task = bar.add_task("LR range test", 10)
    task.step(0.1, 2.0)
    task.end("stopped")
    bar.teardown(None, None, "fit")
    assert buffer.getvalue() == ""


def test_repeats_get_a_line_each_and_the_display_ends_with_the_fit():
    buffer = io.StringIO()
    bar = RangeTestProgressBar(console=Console(file=buffer, width=120))
    for _ in range(2):
        task = bar.add_task("LR range test", 3)
        for k in range(3):
            task.step(0.1 * (k + 1), 2.0)
    bar.on_exception(None, None, RuntimeError("boom"))  # a failed fit still closes the display
    out = buffer.getvalue()
    assert "LR range test #2" in out and out.count("3/3 eta") == 2, out
