"""The max_lr trials (callbacks/range_test/trials.py): candidates, trial length, score and choice on numbers with
known answers; the end-to-end check on a problem with a known best LR is in test_range_test_loss.py."""
from __future__ import annotations

import math

import pytest

from callbacks.range_test import trial_runs, trials


def test_candidates_rise_without_repeats_and_respect_the_cap():
    assert trials.candidates(0.01, [10, 1, 3, 1]) == pytest.approx([0.01, 0.03, 0.1])
    assert trials.candidates(0.01, [1, 3, 10], cap=0.05) == pytest.approx([0.01, 0.03])
    assert trials.candidates(0.01, [3, 10], cap=0.001) == pytest.approx([0.03])  # the smallest always stays
    # a loss minimum at the sweep's last LR: its 1x sits at the cap and is not tried, however the minimum rounds
    assert trials.candidates(10.000000000000002, [0.3, 1, 3, 10], cap=10.0) == pytest.approx([3.0])
    assert trials.candidates(10.0, [0.3, 1, 3, 10], cap=10.0) == pytest.approx([3.0])
    assert trials.candidates(9.99, [0.3, 1, 3, 10], cap=10.0) == pytest.approx([2.997, 9.99])


def test_a_weak_signal_is_a_best_trial_under_18_percent_below_chance():
    assert trials.weak(0.17) and not trials.weak(trials.WEAK_PROGRESS) and not trials.weak(0.4)
    assert not trials.weak(None)  # no chance level, or no trial learned: nothing to call weak


@pytest.mark.parametrize("run_steps, expected", [(1000, 50), (100, 20), (100_000, 200), (None, 200),
                                                 (math.inf, 200)])
def test_trial_length_is_a_fraction_of_the_run_within_bounds(run_steps, expected):
    assert trials.trial_length(run_steps, 0.05, 20, 200) == expected


@pytest.mark.parametrize("per_step, expected", [(64, 50), (32, 100), (16, 200), (8, 200), (None, 50), (256, 50)])
def test_trial_length_sees_at_least_min_images_up_to_the_max(per_step, expected):
    """3,200 images: 50 steps at batch 64 (the step floor), 100 at batch 32, capped at 200 below batch 16."""
    assert trials.trial_length(400, 0.05, 50, 200, 3200, per_step) == expected
    assert trials.trial_length(400, 0.05, 50, 200, 0, per_step) == 50  # 0: no floor in images


def test_images_per_step_counts_batch_accumulation_and_ranks():
    from types import SimpleNamespace

    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    data = list(range(100))
    plain = SimpleNamespace(train_dataloader=DataLoader(data, batch_size=24), accumulate_grad_batches=2, world_size=3)
    assert trial_runs.images_per_step(plain) == 24 * 2 * 3
    sampler = BatchSampler(SequentialSampler(data), batch_size=10, drop_last=False)
    own = SimpleNamespace(train_dataloader=[DataLoader(data, batch_sampler=sampler)], accumulate_grad_batches=1,
                          world_size=1)
    assert trial_runs.images_per_step(own) == 10  # a batch sampler's size, inside a list of loaders
    from datamodules.batches import make_train_loader

    ours = make_train_loader(data, 12, 0, True, {"num_replicas": 2, "rank": 0}, lambda: 0)  # yields whole batches
    assert ours.batch_size is None
    project = SimpleNamespace(train_dataloader=ours, accumulate_grad_batches=1, world_size=2)
    assert trial_runs.images_per_step(project) == 24  # 12 per rank, 2 ranks
    unknown = SimpleNamespace(train_dataloader=DataLoader(data, batch_sampler=[[0, 1], [2]]),
                              accumulate_grad_batches=1, world_size=1)
    assert trial_runs.images_per_step(unknown) is None


def test_bad_trial_min_images_is_refused_naming_the_key():
    for bad in (-1, 2.5, True, "3200"):
        with pytest.raises(ValueError, match="range_test.trial_min_images"):
            trials.check_trial_settings([1.0], 0.05, 50, 200, 0.05, True, bad)


def test_score_is_the_mean_of_the_last_quarter_and_inf_after_divergence():
    assert trials.trial_score([5, 4, 3, 2, 1, 1, 1, 3]) == pytest.approx(2.0)  # last 2 of 8
    assert trials.trial_score([3.0, 2.0, 1.0]) == pytest.approx(1.5)          # at least 2 steps
    assert trials.trial_score([1.0, float("nan"), 1.0]) == math.inf
    assert trials.trial_score([]) == math.inf


def test_choice_is_the_lowest_score_and_prefers_the_larger_lr_on_a_tie():
    runs = [{"lr": 0.01, "score": 1.2}, {"lr": 0.03, "score": 0.9}, {"lr": 0.1, "score": math.inf}]
    assert trials.choose(runs)["lr"] == 0.03
    assert trials.choose([{"lr": 0.01, "score": 1.0}, {"lr": 0.03, "score": 1.0}])["lr"] == 0.03
    with pytest.raises(RuntimeError, match="every max_lr trial diverged"):
        trials.choose([{"lr": 0.1, "score": math.inf}])
    assert "0.03: 0.9000 (chosen)" in trials.describe(runs, 0.03)


def test_default_schedule_is_a_one_cycle_at_the_peak():
    fn = trials.default_schedule(max_lr=0.4)
    peak = max(fn(k, 100)[0] for k in range(100))
    assert peak == pytest.approx(0.4, rel=0.05)
    assert fn(0, 100)[0] == pytest.approx(0.04)


# ------------------------------------------------------------------ end to end, on a problem with a known answer
def _constant(max_lr):
    return lambda step, total: (max_lr, None)


def _least_squares():
    """256 points of a noiseless linear target in 8 features: ``(x, y, L)``, L the largest eigenvalue of the mean
    squared error's Hessian (the Regression model has a bias, hence the column of ones)."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, generator=g)
    features = torch.cat([x, torch.ones(256, 1)], 1)
    return x, y, float(torch.linalg.eigvalsh(2 * features.T @ features / 256).max())


def test_trials_on_least_squares_pick_the_stable_fast_lr_and_leave_the_model_as_it_was(tmp_path):
    """Plain gradient descent on least squares converges fastest near 1/L and diverges above 2/L (L: the largest
    eigenvalue of the loss's Hessian). Given candidates far below, near and far above that window, the trials
    must choose the one inside it, score the divergent one inf (or drop it at the sweep's stop), and restore the
    weights bitwise."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks.range_test.finder import find_lr
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import Regression, assert_tensors_equal

    x, y, lipschitz = _least_squares()
    pl.seed_everything(0, verbose=False)
    model = Regression()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    window = 1.0 / lipschitz
    test = LRRangeTest(min_lr=1e-4, max_lr=10.0, num_steps=60, trial_factors=[1.0], trial_min_steps=30,
                       trial_max_steps=30, trial_schedule=_constant)
    # candidates chosen around the known answer (not the curve's): 1/50, 1 and 3 times 1/L
    test.trial_factors = []  # the sweep alone first, to learn its rule's LR
    base = find_lr(model, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=256), range_test=test,
                   accelerator="cpu", max_epochs=1, limit_val_batches=0).suggestions["loss_min"]
    test.trial_factors = [window / base / 50, window / base, 3 * window / base]
    result = find_lr(model, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=256), range_test=test,
                     accelerator="cpu", max_epochs=1, limit_val_batches=0)
    assert result.rule == "blend" and len(result.trials) >= 2  # a trial learned: blended with the update point
    assert result.suggestions["trials"] == pytest.approx(window, rel=1e-6)
    assert result.lr == pytest.approx(math.sqrt(window * result.suggestions["update"]))
    scores = {round(t["lr"] / window, 3): t["score"] for t in result.trials}
    assert scores[0.02] > scores[1.0]                      # far below: slow
    assert scores.get(3.0, math.inf) > 1e6 * scores[0.02]  # above 2/L: blew up (or dropped at the sweep's stop)
    assert result.search_steps == len(result.lrs) + sum(t["steps"] for t in result.trials)
    assert_tensors_equal(model.state_dict(), init)
    # lr_range_test.json keeps every trial's per-step losses: the choice replays from the file alone
    from callbacks.range_test.result import RangeTestResult
    from callbacks.range_test.trials import choose, trial_score

    saved = RangeTestResult.from_json(result.to_json(str(tmp_path / "lr_range_test.json"))).trials
    assert [len(t["losses"]) for t in saved] == [t["steps"] for t in result.trials]
    assert all(t["score"] == trial_score(t["losses"]) for t in saved if math.isfinite(t["score"]))
    assert choose(saved, tolerance=test.trial_tolerance, chance=saved[0]["chance_loss"])["lr"] == result.suggestions["trials"]


@pytest.mark.parametrize("accumulate, steps", [(1, 16), (2, 8)])
def test_trials_at_a_small_batch_run_long_enough_to_see_min_images(accumulate, steps):
    """Batch 16 and trial_min_images=256: 16 steps (8 with two batches accumulated per step), above the 4-step
    floor, and the trials record what they planned and how many images a step held."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks.range_test.finder import find_lr
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import Regression

    x, y, lipschitz = _least_squares()
    pl.seed_everything(0, verbose=False)
    test = LRRangeTest(min_lr=1e-4, max_lr=1.0, num_steps=20, trial_factors=[0.3, 1.0], trial_min_steps=4,
                       trial_max_steps=64, trial_min_images=256, trial_refine=False, trial_schedule=_constant)
    result = find_lr(Regression(), train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=16),
                     range_test=test, accelerator="cpu", max_epochs=1, limit_val_batches=0,
                     accumulate_grad_batches=accumulate)
    assert [t["planned_steps"] for t in result.trials] == [steps] * len(result.trials)
    assert all(t["images_per_step"] == 16 * accumulate for t in result.trials)
    assert all(t["steps"] == steps for t in result.trials if math.isfinite(t["score"]))
    assert result.settings["trial_min_images"] == 256


def test_a_sweep_that_never_blew_up_caps_the_trials_at_its_last_lr():
    """On least squares a sweep that ends at a quarter of 1/L never diverges; 3x and 10x its loss minimum lie
    above every LR it tried, so they are not trials (before the fix the cap was none and 10x could be chosen)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks.range_test.finder import find_lr
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import Regression

    x, y, lipschitz = _least_squares()
    top = 0.25 / lipschitz
    pl.seed_everything(0, verbose=False)
    test = LRRangeTest(min_lr=top / 1000, max_lr=top, num_steps=30, trial_factors=[0.3, 1, 3, 10],
                       trial_min_steps=8, trial_max_steps=8, trial_schedule=_constant)
    result = find_lr(Regression(), train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=256),
                     range_test=test, accelerator="cpu", max_epochs=1, limit_val_batches=0)
    assert len(result.lrs) == 30  # the sweep ran to its end: it never blew up
    assert result.trials and max(t["lr"] for t in result.trials) <= result.lrs[-1] * (1 + 1e-9)
    assert result.lr <= result.lrs[-1] * (1 + 1e-9)


def test_a_larger_lr_that_is_not_clearly_worse_wins_and_a_clearly_worse_one_does_not():
    import random

    rng = random.Random(0)
    batches = [rng.uniform(1.0, 2.0) * (1 - 0.015 * k) for k in range(40)]  # falling; batch difficulty shared
    low = {"lr": 0.01, "losses": [b + 0.000 + rng.gauss(0, 0.01) for b in batches]}
    near = {"lr": 0.03, "losses": [b + 0.002 + rng.gauss(0, 0.01) for b in batches]}   # within noise
    worse = {"lr": 0.1, "losses": [b + 0.100 + rng.gauss(0, 0.01) for b in batches]}   # 10 s.e. worse
    for t in (low, near, worse):
        t["score"] = trials.trial_score(t["losses"])
    assert trials.choose([low, near, worse])["lr"] == 0.03
    assert trials.choose([low, worse])["lr"] == 0.01
    assert trials.beats(low["losses"], worse["losses"]) and not trials.beats(low["losses"], near["losses"])


def test_trials_that_learned_nothing_fall_back_to_the_rule_and_do_not_win():
    import random

    rng = random.Random(1)
    flat = [1.79 + rng.gauss(0, 0.05) for _ in range(40)]                  # at chance throughout
    falling = [1.79 - 0.02 * k + rng.gauss(0, 0.05) for k in range(40)]    # learns
    assert not trials.learned(flat) and trials.learned(falling)
    lucky = {"lr": 0.18, "factor": 10.0, "losses": [x - 0.3 for x in flat]}  # lowest score, but learned nothing
    rule = {"lr": 0.018, "factor": 1.0, "losses": falling[:20] + [1.6] * 20}
    for t in (lucky, rule):
        t["score"] = trials.trial_score(t["losses"])
    assert lucky["score"] < rule["score"] and trials.choose([lucky, rule])["lr"] == 0.018
    none_learned = [{"lr": lr, "factor": f, "losses": flat, "score": trials.trial_score(flat)}
                    for lr, f in ((0.006, 1 / 3), (0.018, 1.0), (0.054, 3.0))]
    assert trials.choose(none_learned)["lr"] == 0.018                      # the rule's own LR


def test_a_larger_lr_within_the_tolerance_wins_even_when_clearly_worse():
    """Short trials favour small peaks: a candidate 3% worse, though 2 s.e. worse by the paired test, is kept
    under the default 5% tolerance, and is not without it; 8% worse is not kept either way."""
    batches = [2.0 - 0.01 * k for k in range(40)]
    low = {"lr": 0.01, "losses": batches}
    near = {"lr": 0.03, "losses": [b * 1.03 for b in batches]}   # every batch 3% worse: beaten on the paired test
    far = {"lr": 0.1, "losses": [b * 1.08 for b in batches]}
    for t in (low, near, far):
        t["score"] = trials.trial_score(t["losses"])
    assert trials.beats(low["losses"], near["losses"])
    assert trials.choose([low, near, far])["lr"] == 0.01
    assert trials.choose([low, near, far], tolerance=0.05)["lr"] == 0.03
    assert trials.choose([low, far], tolerance=0.05)["lr"] == 0.01


def test_trials_that_learned_well_keep_a_larger_lr_only_when_the_paired_test_cannot_tell_it_apart():
    """The lowest trial ends at 1.66 (last quarter of 2.0 - 0.01 k). Against chance 2.3 that is 28% below it (>= 18%):
    no tolerance (STRONG_TOLERANCE = 0), so a candidate 2% worse on every batch (beaten on the paired test) is not
    kept, while one that is 1% worse on average but +-3% per batch (not beaten) is. Against chance 1.8 (8% below:
    weak) the 5% tolerance keeps a 4%-worse one, as without a chance level."""
    batches = [2.0 - 0.01 * k for k in range(40)]
    low = {"lr": 0.01, "losses": batches}
    worse4 = {"lr": 0.03, "losses": [b * 1.04 for b in batches]}
    worse2 = {"lr": 0.02, "losses": [b * 1.02 for b in batches]}
    noisy = {"lr": 0.04, "losses": [b * (1.01 + (0.03 if k % 2 else -0.03)) for k, b in enumerate(batches)]}
    for t in (low, worse4, worse2, noisy):
        t["score"] = trials.trial_score(t["losses"])
    assert trials.STRONG_TOLERANCE == 0.0
    assert (2.3 - low["score"]) / 2.3 >= trials.WEAK_PROGRESS > (1.8 - low["score"]) / 1.8
    assert trials.beats(low["losses"], worse2["losses"]) and not trials.beats(low["losses"], noisy["losses"])
    assert trials.choose([low, worse2, worse4], tolerance=0.05, chance=2.3)["lr"] == 0.01
    assert trials.choose([low, worse2, noisy], tolerance=0.05, chance=2.3)["lr"] == 0.04
    assert trials.choose([low, worse4], tolerance=0.05, chance=1.8)["lr"] == 0.03
    assert trials.choose([low, worse4], tolerance=0.05)["lr"] == 0.03


def test_refinement_is_the_midpoint_towards_the_next_larger_candidate_that_did_not_diverge():
    runs = [{"lr": 0.01, "score": 1.0}, {"lr": 0.04, "score": 1.2}, {"lr": 0.16, "score": math.inf}]
    assert trials.refinement(runs, 0.01) == pytest.approx(0.02)
    assert trials.refinement(runs, 0.04) is None                     # the next one diverged
    assert trials.refinement(runs[:2], 0.04) is None                 # the largest candidate
    with pytest.raises(ValueError, match="range_test.trial_tolerance"):
        trials.check_trial_settings([1.0], 0.05, 50, 200, tolerance=1.5)
    with pytest.raises(ValueError, match="range_test.trial_refine"):
        trials.check_trial_settings([1.0], 0.05, 50, 200, refine="yes")


def test_the_refinement_trial_runs_between_the_winner_and_the_next_candidate_and_joins_the_choice():
    """End to end on least squares with a constant LR: candidates 1/L and 1.95/L (both converge; at 1.95/L the top
    direction barely decays, so it scores clearly worse). The winner is 1/L; a third trial runs at the geometric
    midpoint (1.40/L), which converges in every direction faster than 1/L does in the slow ones, and wins; the
    weights come back bitwise."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks.range_test.finder import find_lr
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import Regression, assert_tensors_equal

    x, y, lipschitz = _least_squares()
    window = 1.0 / lipschitz
    pl.seed_everything(0, verbose=False)
    model = Regression()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    test = LRRangeTest(min_lr=window / 1000, max_lr=10 * window, num_steps=40, trial_factors=[1.0],
                       trial_min_steps=20, trial_max_steps=20, trial_schedule=_constant)
    test.trial_factors = []
    base = find_lr(model, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=256), range_test=test,
                   accelerator="cpu", max_epochs=1, limit_val_batches=0).suggestions["loss_min"]
    test.trial_factors = [window / base, 1.95 * window / base]
    result = find_lr(model, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=256), range_test=test,
                     accelerator="cpu", max_epochs=1, limit_val_batches=0)
    scores = {round(t["lr"] / window, 3): t["score"] for t in result.trials}
    assert list(scores) == [1.0, 1.95, round(math.sqrt(1.95), 3)]
    assert scores[1.95] > 1.05 * scores[1.0]                  # the first round's winner is 1/L ...
    assert result.suggestions["trials"] == pytest.approx(math.sqrt(1.95) * window)  # ... the midpoint beats it
    assert scores[round(math.sqrt(1.95), 3)] < scores[1.0]
    assert_tensors_equal(model.state_dict(), init)


# ------------------------------------------------------------------ each trial's validation loss and accuracy
