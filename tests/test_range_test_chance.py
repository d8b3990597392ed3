"""The max_lr trials' chance-level rules (callbacks/range_test/trials.py): a trial counts only when it ends at least
1% below the chance-level loss, the descent below the candidates when none does, the share below chance and the
weak-signal scale, on numbers with known answers."""
from __future__ import annotations

import math

import pytest

from callbacks.range_test import trial_runs, trials


def test_a_trial_that_ends_at_chance_level_has_not_learned():
    falling_to_chance = [2.2, 2.1, 2.0] + [1.9] * 5 + [1.62] * 4   # fell 26%, but ends above ln 5 = 1.609
    learning = [2.2, 2.1, 2.0] + [1.8] * 5 + [1.40] * 4
    chance = math.log(5)
    assert trials.learned(falling_to_chance) and not trials.learned(falling_to_chance, chance=chance)
    assert trials.learned(learning, chance=chance)
    big = {"lr": 1.0, "losses": falling_to_chance, "score": trials.trial_score(falling_to_chance)}
    small = {"lr": 0.01, "losses": learning, "score": trials.trial_score(learning)}
    assert trials.choose([small, big], tolerance=0.2)["lr"] == 1.0  # within 20% and "learned": the larger
    assert trials.choose([small, big], tolerance=0.2, chance=chance)["lr"] == 0.01


def test_a_trial_a_hair_under_chance_has_not_learned_and_is_never_chosen():
    """Held-out drawn set, seed 0 (issue 20): every candidate ended at or above ln 6 but the largest, 0.005% under
    it (a model predicting the class prior); counted as learned it was the only one, and auto trained at its LR x1.25,
    at chance. With the 1% margin none has learned, so the choice falls back to the rule's own LR (factor 1)."""
    chance = math.log(6)                                   # 1.7918
    start = [2.3, 2.2, 2.1]
    hair = start + [1.9] * 9 + [chance * (1 - 0.00005)] * 4      # 0.005% under chance
    just = start + [1.9] * 9 + [chance * (1 - 0.015)] * 4        # 1.5% under: learned
    assert trials.learned(hair) and trials.trial_score(hair) < chance  # fell, and ended under chance ...
    assert not trials.learned(hair, chance=chance)                      # ... but not 1% under it
    assert not trials.learned(start + [1.9] * 9 + [chance * (1 - 0.0099)] * 4, chance=chance)
    assert trials.learned(just, chance=chance)
    flat = start + [1.9] * 9 + [chance * 1.03] * 4
    recorded = [{"lr": lr, "factor": f, "losses": losses, "score": trials.trial_score(losses)}
                for lr, f, losses in ((0.0037, 0.3, flat), (0.0123, 1.0, flat), (0.037, 3.0, flat),
                                      (0.123, 10.0, hair))]
    assert trials.choose(recorded, tolerance=0.05, chance=chance)["lr"] == 0.0123
    recorded[0]["losses"] = just
    recorded[0]["score"] = trials.trial_score(just)
    assert trials.choose(recorded, tolerance=0.05, chance=chance)["lr"] == 0.0037  # the one that learned


def test_trials_descend_below_the_candidates_when_none_ends_below_chance(monkeypatch):
    """A range test whose minimum sat on a chance plateau (base 1.0): every candidate (0.3-10) ends at chance
    level, so the trials descend from 0.3 by sqrt(10) until one learns (LRs <= 0.01 do here), then refine between
    it and the next larger candidate (at chance again, so not chosen)."""
    from types import SimpleNamespace

    from torch.utils.data import DataLoader

    chance = math.log(5)
    ran = []

    def fake_run_trials(trainer, pl_module, snapshot, lrs, steps, schedule, seed, steps_per_epoch, val_batches=0, chance=None):
        ran.extend(lrs)
        end = 1.40 if lrs[0] <= 0.01 else 1.62
        return [{"lr": lr, "losses": [2.2, 2.1, 2.0] + [1.9] * 5 + [end] * 4, "steps": 12,
                 "score": end} for lr in lrs]

    monkeypatch.setattr(trial_runs, "run_trials", fake_run_trials)
    trainer = SimpleNamespace(estimated_stepping_batches=400, num_training_batches=40, accumulate_grad_batches=1,
                              world_size=1, train_dataloader=DataLoader(list(range(64)), batch_size=64))
    module = SimpleNamespace(chance_loss=lambda: chance)
    out = trial_runs.trials_after_sweep(trainer, module, None, base=1.0, cap=None, factors=[0.3, 1, 3, 10],
                                    length=(0.05, 12, 12, 0), schedule=None, seed=0, tolerance=0.05, refine=True,
                                    floor=1e-5)
    ladder = [0.3 / 10 ** 0.5, 0.3 / 10, 0.3 / 10 ** 1.5]
    assert ran[:4] == pytest.approx([0.3, 1, 3, 10]) and ran[4:7] == pytest.approx(ladder)
    assert ran[7] == pytest.approx(math.sqrt(ladder[2] * ladder[1]))  # the refinement, between 0.0095 and 0.03
    assert trials.choose(out, tolerance=0.05, chance=chance)["lr"] == pytest.approx(ladder[2])
    assert [t["learned"] for t in out] == [False] * 6 + [True, False] and out[0]["chance_loss"] == chance
    ran.clear()
    trial_runs.trials_after_sweep(trainer, module, None, base=1.0, cap=None, factors=[0.3, 1, 3, 10],
                              length=(0.05, 12, 12, 0), schedule=None, seed=0, refine=False, floor=0.05)
    assert ran == pytest.approx([0.3, 1, 3, 10, 0.3 / 10 ** 0.5])  # not below the sweep's first LR
    ran.clear()
    trial_runs.trials_after_sweep(trainer, module, None, base=1.0, cap=None, factors=[0.3, 1, 3, 10],
                              length=(0.05, 12, 12, 0), schedule=None, seed=0, refine=False, floor=1e-5,
                              descend=False)
    assert ran == pytest.approx([0.3, 1, 3, 10])  # the caller has a fallback (the rise point): no descent
    ran.clear()
    trial_runs.trials_after_sweep(trainer, SimpleNamespace(), None, base=1.0, cap=None, factors=[0.3, 1, 3, 10],
                              length=(0.05, 12, 12, 0), schedule=None, seed=0, refine=False, floor=1e-5)
    assert ran == pytest.approx([0.3, 1, 3, 10])  # a module that does not say its chance level: no descent

    def flat(trainer, pl_module, snapshot, lrs, steps, schedule, seed, steps_per_epoch, val_batches=0, chance=None):
        ran.extend(lrs)
        return [{"lr": lr, "losses": [2.0] * 12, "steps": 12, "score": 2.0} for lr in lrs]

    monkeypatch.setattr(trial_runs, "run_trials", flat)
    ran.clear()
    out = trial_runs.trials_after_sweep(trainer, module, None, base=1.0, cap=None, factors=[0.3, 1, 3, 10],
                                    length=(0.05, 12, 12, 0), schedule=None, seed=0, refine=True, floor=1e-5)
    assert ran == pytest.approx([0.3, 1, 3, 10])  # nothing fell at all (too short to learn): no descent either,
    assert trials.choose(out, tolerance=0.05, chance=chance)["lr"] == 1  # nor a refinement: the rule's own LR


def test_below_chance_is_the_best_learned_trials_share_under_the_chance_level():
    def trial(score, learned=True, chance=2.0):
        return {"lr": 0.1, "score": score, "learned": learned, "chance_loss": chance}

    assert trials.below_chance([trial(1.8), trial(1.6), trial(1.2, learned=False)]) == pytest.approx(0.2)
    assert trials.below_chance([trial(1.9, learned=False)]) is None  # none learned
    assert trials.below_chance([trial(1.5, chance=None)]) is None  # the module does not say its chance level
    assert trials.below_chance([trial(math.inf), trial(1.9)]) == pytest.approx(0.05)  # a diverged one is skipped


def test_the_choice_is_the_chosen_trials_lr_whether_the_signal_is_weak_or_strong():
    """Same trials (the lowest at 1.66 over its last quarter, a 4%-worse larger one), as trials_after_sweep records
    them. Chance 1.8: 8% below (weak), the 5% tolerance keeps 0.03, and max_lr is 0.03 itself (v7 multiplied it by
    1.25; v14 does not). Chance 2.3: 28% below (strong), 0.01. The lr_source line says which."""
    from callbacks.range_test.result import RangeTestResult

    batches = [2.0 - 0.01 * k for k in range(40)]

    def recorded(chance):
        out = [{"lr": 0.01, "factor": 1.0, "losses": batches}, {"lr": 0.03, "factor": 3.0,
                                                                "losses": [b * 1.04 for b in batches]}]
        return [{**t, "score": trials.trial_score(t["losses"]), "learned": True, "chance_loss": chance} for t in out]

    assert trials.choose(recorded(1.8), tolerance=0.05, chance=1.8)["lr"] == 0.03
    assert trials.choose(recorded(2.3), tolerance=0.05, chance=2.3)["lr"] == 0.01
    weak = RangeTestResult(kind="loss", lrs=[0.001, 0.1], losses=[2.0, 1.0], smoothed=[2.0, 1.0], rule="trials",
                           lr=0.03, suggestions={"loss_min": 0.01, "trials": 0.03}, trials=recorded(1.8))
    assert weak.trial_signal == "; best trial 8% below chance-level loss, a weak signal: sweep 0.3x-3x around it"
