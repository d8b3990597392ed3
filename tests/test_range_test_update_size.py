"""The update point (v17, issue 20): how far each range-test step moved the weights, the first LR where a step moved
them more than 3%, and auto's LR as the geometric mean of it and the trials' choice. On worked numbers, against an
independent reading of one plain SGD step (``lr * ||grad|| / ||w||``), then end to end through ``find_lr``."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from callbacks.range_test.update_size import (UPDATE_SHARE, StepSize, blend, relative_update, update_point,
                                              weight_tensors)


def test_relative_update_is_the_median_over_tensors_of_the_step_over_the_weights():
    before = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([0.0, 2.0])]
    after = [torch.tensor([3.0, 4.5]), torch.tensor([[1.0, 0.3], [0.0, 0.0]]), torch.tensor([0.0, 2.2])]
    # steps: 0.5 / 5 = 0.1, 0.3 / 1 = 0.3, 0.2 / 2 = 0.1 -> median 0.1
    assert relative_update(before, after) == pytest.approx(0.1)
    assert relative_update(before[:2], after[:2]) == pytest.approx(0.2)  # an even count: the middle two's mean
    assert relative_update([torch.zeros(3), before[0]], [torch.ones(3), after[0]]) == pytest.approx(0.1)  # norm 0 skipped
    assert math.isnan(relative_update([torch.zeros(2)], [torch.ones(2)]))


def test_weight_tensors_are_the_trainable_ones_of_two_dimensions_and_up():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(torch.zeros(1, 3, 5, 5))
    net[0].weight.requires_grad_(False)
    assert [tuple(p.shape) for p in weight_tensors(net)] == [(2, 36)]  # the frozen conv and every 1-D one left out
    assert len(weight_tensors(torch.nn.BatchNorm1d(3))) == 2  # none 2-D: every trainable one


def test_one_plain_sgd_step_moves_each_weight_by_lr_times_its_gradient_norm():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3), torch.nn.Tanh(),
                              torch.nn.Linear(3, 2))
    x, y = torch.randn(16, 5), torch.randint(0, 2, (16,))
    opt = torch.optim.SGD(net.parameters(), lr=0.7)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    oracle = sorted(0.7 * float(p.grad.norm()) / float(p.detach().norm()) for p in net.parameters() if p.ndim == 2)
    size = StepSize(net)
    size.before()
    opt.step()
    assert size.after() == pytest.approx(oracle[1], rel=1e-5)  # three weight matrices: the middle one


def test_the_update_point_is_the_first_lr_past_three_percent():
    lrs = list(np.logspace(-4, 1, 51))  # 10 per decade
    sizes = [0.05 * lr for lr in lrs]  # a step moves the weights 5% per unit LR: 3% at LR 0.6
    assert update_point(lrs, sizes) == pytest.approx(lrs[next(k for k, lr in enumerate(lrs) if lr > 0.6)])
    assert UPDATE_SHARE == 0.03 and update_point(lrs, sizes, share=0.02) == pytest.approx(lrs[37])  # 0.4 < 0.50 = lrs[37]
    assert update_point(lrs, [0.001] * 51) == pytest.approx(10.0)  # never moved 3%, stopped there: its last LR
    assert update_point(lrs, [0.001] * 51, stopped=False) is None  # ran to its configured end: nothing measured
    assert update_point(lrs, sizes, stopped=False) == update_point(lrs, sizes)  # a measured point stands
    assert update_point(lrs[:30], [0.001] * 29 + [math.nan]) == pytest.approx(lrs[29])  # a NaN never counts
    assert update_point([], []) is None and update_point(lrs, sizes[:3]) is None
    assert blend(0.4, 0.1) == pytest.approx(0.2)


def test_find_lr_blends_the_trials_choice_with_the_update_point_and_records_every_step(tmp_path):
    import pytorch_lightning as pl

    from callbacks.range_test.finder import find_lr
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import TinyDM, TinyNet

    pl.seed_everything(0, verbose=False)
    test = LRRangeTest(num_steps=40, min_lr=1e-4, max_lr=3.0, trial_min_steps=8, trial_max_steps=8,
                       trial_min_images=0)
    result = find_lr(TinyNet(), TinyDM(), range_test=test, accelerator="cpu", default_root_dir=str(tmp_path))
    sizes = result.repeats[0]["updates"]
    assert len(sizes) == len(result.lrs) and all(s >= 0 for s in sizes)
    assert np.corrcoef(np.log(result.lrs[:20]), np.log(sizes[:20]))[0, 1] > 0.9  # larger LRs, larger steps
    point = next((lr for lr, s in zip(result.lrs, sizes) if s > 0.03), result.lrs[-1])
    assert result.rule == "blend" and result.suggestions["update"] == pytest.approx(point)
    assert result.lr == pytest.approx(math.sqrt(point * result.suggestions["trials"]))
    assert f"update point {point:.3g}" in result.source and f"geometric mean {result.lr:.3g}" in result.source
    from rich.console import Console

    console = Console(record=True, width=200)
    result.print(console)  # the trials' table marks the trials' own choice, the line after it gives the blend
    text = console.export_text()
    assert f"{result.suggestions['trials']:.4g} *" in text and f"found max_lr = {result.lr:.4g}" in text
    paths = result.save(str(tmp_path))
    rows = list(csv.DictReader(open(next(p for p in paths if p.endswith(".csv")))))
    assert [float(r["step_size"]) for r in rows] == pytest.approx(sizes)
    saved = json.load(open(next(p for p in paths if p.endswith(".json"))))
    assert saved["rule"] == "blend" and saved["repeats"][0]["updates"] == pytest.approx(sizes)


def test_update_share_is_checked_and_null_keeps_the_trials_choice(tmp_path):
    import pytorch_lightning as pl

    from callbacks.range_test.finder import find_lr
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import TinyDM, TinyNet

    for bad in (0, 1.0, -0.1, True, "3%"):
        with pytest.raises(ValueError, match="range_test.update_share"):
            LRRangeTest(update_share=bad)
    pl.seed_everything(0, verbose=False)
    test = LRRangeTest(num_steps=40, min_lr=1e-4, max_lr=3.0, trial_min_steps=8, trial_max_steps=8,
                       trial_min_images=0, update_share=None)
    result = find_lr(TinyNet(), TinyDM(), range_test=test, accelerator="cpu", default_root_dir=str(tmp_path))
    assert result.rule == "trials" and result.lr == result.suggestions["trials"] and "update" not in result.suggestions
    assert "update point" not in result.source and result.settings["update_share"] is None


def test_the_range_test_figure_draws_the_step_sizes_on_a_log_axis_at_the_right():
    from callbacks.range_test.result import RangeTestResult

    lrs = list(np.logspace(-4, 0, 30))
    sizes = [0.05 * lr for lr in lrs]
    result = RangeTestResult(kind="loss", lrs=lrs, losses=[2.0 - 0.01 * k for k in range(30)],
                             smoothed=[2.0 - 0.01 * k for k in range(30)], suggestions={"loss_min": 1.0},
                             rule="loss_min", lr=1.0, settings={"update_share": 0.03},
                             repeats=[{"lrs": lrs, "losses": [2.0] * 30, "smoothed": [2.0] * 30, "updates": sizes}])
    fig = result.plot()
    right = [ax for ax in fig.axes if ax.get_yscale() == "log"]
    assert len(right) == 1 and right[0].lines[0].get_ydata().tolist() == pytest.approx(sizes)
    assert right[0].lines[1].get_ydata()[0] == pytest.approx(0.03)  # the update share, dotted
    legend = [t.get_text() for t in fig.legends[0].get_texts()]  # below the axes: no line crosses it
    assert any(t.startswith("step size (right axis") for t in legend) and "step size 3%" in legend
    result.repeats[0].pop("updates")  # a sweep recorded before v17: no right axis
    assert len(result.plot().axes) == 1  # the loss axis alone


def test_an_update_point_where_the_loss_stood_about_zero_is_none():
    """v20 (RESULTS.md 2026-12-03 14:44): given the sweep's smoothed losses and the chance-level loss, a point where
    the loss stood below 1% of chance does not count; at 1% or more it does; also the stop's fallback point."""
    lrs, sizes = [0.01, 0.1, 1.0, 10.0], [0.001, 0.01, 0.02, 0.031]
    assert update_point(lrs, sizes, losses=[1.0, 0.1, 1e-4, 3e-5], chance=1.1) is None
    assert update_point(lrs, sizes, losses=[1.0, 0.1, 1e-4, 0.012], chance=1.1) == 10.0
    assert update_point(lrs, [0.001] * 4, stopped=True, losses=[1.0, 0.5, 0.2, 0.001], chance=1.1) is None
    assert update_point(lrs, sizes, losses=[1.0, 0.1, 1e-4, 3e-5]) == 10.0  # no chance level: as measured
