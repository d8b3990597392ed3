"""Where no max_lr trial learned (v10, issue 20): an SGD-family optimizer trains at the range test's rise point (the
first LR where the smoothed loss stands 10% above its lowest so far), the Adam family at the rule's LR. On worked
numbers, then end to end on data nothing can learn (random labels), against an independent numpy reading of the
curve."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from callbacks.range_test import trials
from callbacks.range_test.suggestions import rise_point


def test_rise_point_is_the_first_lr_ten_percent_above_the_lowest_loss_so_far():
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    # lowest 1.8 at 1e-2; 1.97 is 9.4% above it (not yet); 2.5 is 39% above it
    assert rise_point(lrs, [2.0, 1.9, 1.8, 1.85, 1.97, 2.5], 0.1) == 10.0
    assert rise_point(lrs, [2.0, 1.9, 1.8, 1.85, 1.97, 2.5], 0.05) == 1.0  # 1.97 > 1.05 x 1.8 = 1.89
    # an early bump 8% above the start is no rise; then the loss falls to 1.0 and 1.11 is one
    assert rise_point(lrs, [2.0, 2.16, 1.5, 1.0, 1.11, 1.05], 0.1) == 1.0
    assert rise_point(lrs, [2.0, 1.9, 1.8, 1.7, 1.6, 1.5], 0.1) is None  # never rises
    assert rise_point(lrs, [2.0, 1.9, 1.8, 1.7, math.nan, 1.5], 0.1) == 1.0  # a blow-up after a finite value rises
    assert rise_point(lrs, [math.nan, 1.9, 1.8, 1.7, 1.6, 1.5], 0.1) is None  # a missing first point does not


def test_the_adam_family_is_read_off_the_parameter_groups():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert trials.adam_family([torch.optim.Adam(params), torch.optim.SGD(params, lr=0.1)])
    assert trials.adam_family([torch.optim.AdamW(params)]) and trials.adam_family([torch.optim.NAdam(params)])
    for opt in (torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True), torch.optim.Adagrad(params),
                torch.optim.RMSprop(params)):
        assert not trials.adam_family([opt])
    assert not trials.adam_family([])


def test_the_rise_point_is_used_only_when_no_trial_learned_with_an_sgd_family_optimizer():
    def recorded(*learned):
        return [{"lr": 0.01 * 3 ** k, "score": 1.6, "learned": flag} for k, flag in enumerate(learned)]

    assert trials.untrained_fallback(recorded(False, False), rise=0.05, adaptive=False) == 0.05
    assert trials.untrained_fallback(recorded(False, False), rise=0.05, adaptive=True) is None  # Adam: the rule
    assert trials.untrained_fallback(recorded(False, True), rise=0.05, adaptive=False) is None  # one learned
    assert trials.untrained_fallback(recorded(False, False), rise=None, adaptive=False) is None  # never rose
    assert trials.untrained_fallback([], rise=0.05, adaptive=False) is None  # no trials ran
    assert trials.none_learned(recorded(False, False)) and not trials.none_learned(recorded(True, False))
    assert not trials.none_learned([])  # no trials: nothing to say they did not learn


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_nothing_learns_on_random_labels_so_sgd_trains_at_the_rise_point_and_adam_at_the_rule(opt):
    """2,048 points with random labels among 3 classes (chance-level loss ln 3): no trial can end 1% below it, but
    from logits 20x too large the loss falls towards it. With SGD the found LR is the rise point of the recorded
    curve, read here with numpy alone, and the trials do not descend below the candidates; with Adam they do (the
    lowest candidate's loss fell), and the LR is the rule's (loss_min). Both say so in ``lr_source``."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks.range_test.finder import find_lr
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import TinyNet

    class Chance(TinyNet):
        def __init__(self, opt):
            super().__init__(opt=opt)
            with torch.no_grad():  # logits 20x too large: the loss starts far above chance and falls towards it
                self.net[4].weight.mul_(20)

        def chance_loss(self):
            return math.log(3)

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(2048, 8, generator=g), torch.randint(0, 3, (2048,), generator=g))
    pl.seed_everything(0, verbose=False)
    test = LRRangeTest(min_lr=1e-4, max_lr=10.0, num_steps=60, trial_min_steps=16, trial_max_steps=16,
                       trial_min_images=0)
    result = find_lr(Chance(opt=opt), train_dataloaders=DataLoader(data, batch_size=32, shuffle=True),
                     range_test=test, accelerator="cpu", max_epochs=1, limit_val_batches=0)
    assert result.trials and not any(t["learned"] for t in result.trials)
    smoothed = np.asarray(result.smoothed)
    rises = np.flatnonzero(smoothed > 1.1 * np.minimum.accumulate(smoothed))
    assert rises.size and result.suggestions["rise"] == pytest.approx(result.lrs[rises[0]])
    if opt == "sgd":  # and no descent below the candidates (0.3x-10x the rule's LR): the rise point is the fallback
        assert result.rule == "rise" and result.lr == pytest.approx(result.lrs[rises[0]])
        assert min(t["factor"] for t in result.trials) == pytest.approx(0.3)
        assert f"the range test's rise point {result.lr:.3g}" in result.source
    else:
        assert result.rule == "trials" and result.lr == pytest.approx(result.suggestions["loss_min"])
        assert min(t["factor"] for t in result.trials) < 0.3
        assert "the rule's LR" in result.source and "rise point" not in result.source


def test_no_evidence_when_nothing_learned_nothing_rose_and_the_minimum_sat_at_the_sweeps_end():
    """A ResNet-9 on drawn shapes (issue 20, shapes6_resnet9_nesterov seed 4): the loss barely moved, its minimum
    sat at the sweep's last LR (10), no trial learned: auto trained at 3.0, at chance. That search says nothing."""
    from callbacks.range_test.result import RangeTestResult

    lrs = [1e-3, 1e-2, 1e-1, 1.0, 10.0]

    def result(loss_min, learned=False, rule="trials"):
        return RangeTestResult(kind="loss", lrs=lrs, losses=[1.8] * 5, smoothed=[1.8] * 5,
                               suggestions={"loss_min": loss_min, "trials": 3.0}, rule=rule, lr=3.0,
                               settings={"suggestion": "loss_min"},
                               trials=[{"lr": 3.0, "score": 1.79, "learned": learned, "chance_loss": 1.79}])

    assert "minimum sat at the sweep's last LR, 10" in result(10.000000000000002).no_evidence
    assert result(0.1).no_evidence == ""                   # a minimum inside the sweep: the rule's LR means something
    assert result(10.0, learned=True).no_evidence == ""    # a trial learned: the trials chose
    assert result(10.0, rule="rise").no_evidence == ""     # the loss rose: the rise point was used
