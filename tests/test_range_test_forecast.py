"""The search's cost forecast (callbacks/range_test/forecast.py), said before the range test starts: its numbers
against a count done by hand from the trials' length rule, and, end to end, an upper bound of what the search did."""
from types import SimpleNamespace

import pytest
from torch.utils.data import DataLoader

from callbacks.range_test.forecast import SearchPlan, search_plan

LENGTH = (0.05, 50, 200, 3200)  # conf/range_test/exp.yaml: trial_fraction, min steps, max steps, min images


def fake_trainer(run_steps, batch, accumulate=1, world_size=1):
    return SimpleNamespace(estimated_stepping_batches=run_steps, accumulate_grad_batches=accumulate,
                           num_training_batches=run_steps,  # one epoch: the trials' epoch is theirs
                           world_size=world_size, train_dataloader=DataLoader(list(range(batch)), batch_size=batch))


@pytest.mark.parametrize("run_steps, batch, accumulate, world, repeats, expected_trial, expected_total", [
    (400, 32, 1, 1, 1, 100, 100 + 5 * 100),      # 3,200 images at batch 32: 100 steps (not 5% = 20, nor 50)
    (400, 32, 1, 1, 2, 100, 200 + 5 * 100),      # two sweeps
    (10_000, 512, 1, 1, 1, 200, 100 + 5 * 200),  # 5% = 500, capped at 200
    (2_000, 512, 1, 1, 1, 100, 100 + 5 * 100),   # 5% = 100 (the 3,200-image floor is 7 steps, the step floor 50)
    (400, 16, 2, 2, 1, 50, 100 + 5 * 50),        # 64 images a step over ranks and accumulation: 50 steps
])
def test_plan_counts_as_the_trials_length_rule_says(run_steps, batch, accumulate, world, repeats, expected_trial,
                                                   expected_total):
    plan = search_plan(fake_trainer(run_steps, batch, accumulate, world), 100, repeats, [0.3, 1, 3, 10], LENGTH,
                       refine=True)
    assert (plan.trials, plan.trial_steps, plan.total, plan.run_steps) == (5, expected_trial, expected_total, run_steps)
    assert plan.spare_trials == 6


def test_plan_without_trials_or_refinement():
    plan = search_plan(fake_trainer(400, 32), 100, 1, None, LENGTH, refine=True)
    assert (plan.trials, plan.trial_steps, plan.total, plan.spare_trials) == (0, 0, 100, 0)
    assert plan.line() == "LR search: at most 100 sweep steps = 100 optimizer steps, 0.25x the training's 400"
    plan = search_plan(fake_trainer(400, 32), 100, 1, [1, 1, 3], LENGTH, refine=False)  # repeated factors count once
    assert (plan.trials, plan.total) == (2, 100 + 2 * 100)


def test_plan_line_advises_a_sweep_when_the_search_outgrows_the_training():
    long = SearchPlan(sweep_steps=100, trials=5, trial_steps=200, spare_trials=6, run_steps=10_000).line()
    assert long == ("LR search: at most 100 sweep steps + 5 trials x 200 = 1100 optimizer steps (+ up to 6 x 200 "
                    "where no trial learns), 0.11x the training's 10000")
    short = SearchPlan(sweep_steps=100, trials=5, trial_steps=50, spare_trials=6, run_steps=48).line()
    assert "7.3x the training's 48; on runs this short a sweep of a few fixed max_lr" in short
    assert "Ctrl-C" in short and "Ctrl-C" not in long
    unknown = search_plan(fake_trainer(float("inf"), 32), 100, 1, [1, 3], LENGTH, refine=False)
    assert unknown.trial_steps == 200 and unknown.run_steps is None and "the training's" not in unknown.line()
