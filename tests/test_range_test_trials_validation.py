"""The max_lr trials' validation (v21, callbacks/range_test/trials.py and trial_runs.py): where every trial memorised
the training set their validation loss ranks them; it is read only after trials near memorisation, only from a
validation split of the data's own, and it matches a hand computation."""
from __future__ import annotations

import math

import pytest

from callbacks.range_test import trials


def test_trials_that_memorised_the_training_set_are_ranked_by_their_validation_loss():
    """Chance 1.0986 (three classes). Every trial ends at about 0 training loss (the largest lowest): below 1% of
    chance (MEMORISED) the training loss says only how fast each memorises, so the lowest validation loss wins (ties:
    the larger LR) among the trials that have one (read after those that ended below NEAR_MEMORISED, 10%, of
    chance: one that learned but did not memorise joins the ranking). Where the best trial has no validation loss,
    or did not memorise, the training loss ranks as before."""
    def trial(lr, end, val=None):
        t = {"lr": lr, "losses": [1.2, 1.1, 1.0] + [end * (1 + 0.01 * (k % 3)) for k in range(37)]}
        t["score"] = trials.trial_score(t["losses"])
        return t if val is None else {**t, "val_loss": val}

    chance = 1.0986
    runs = [trial(0.002, 0.02, 0.09), trial(0.006, 0.006, 0.05), trial(0.02, 0.002, 0.2), trial(0.06, 0.0004, 0.3)]
    assert all(trials.learned(t["losses"], chance=chance) for t in runs)
    assert trials.memorised(runs[-1]["score"], chance) and not trials.memorised(runs[0]["score"], chance)
    assert trials.near_memorised(runs[0]["score"], chance) and not trials.near_memorised(0.12, chance)
    assert not trials.near_memorised(0.0, None) and not trials.memorised(0.0, None)
    assert trials.choose(runs, tolerance=0.05, chance=chance)["lr"] == 0.006
    assert trials.choose([*runs[:1], {**runs[1], "val_loss": 0.09}, *runs[2:]], chance=chance)["lr"] == 0.006  # tie
    assert trials.choose(runs, tolerance=0.05)["lr"] == 0.06                  # no chance level: training loss
    no_val = [{k: v for k, v in t.items() if k != "val_loss"} for t in runs]
    assert trials.choose(no_val, tolerance=0.05, chance=chance)["lr"] == 0.06
    assert trials.choose([*runs[:3], {**runs[3], "val_loss": math.nan}], tolerance=0.05, chance=chance)["lr"] == 0.06
    # a trial that ended above 10% of chance has no validation loss: not ranked, whatever its training loss
    assert trials.choose([*runs[1:], trial(0.001, 0.15)], tolerance=0.05, chance=chance)["lr"] == 0.006
    learned_well = [trial(0.002, 0.3, 0.09), trial(0.006, 0.2, 0.05), trial(0.02, 0.1, 0.2)]  # 9% of chance at best
    assert trials.choose(learned_well, tolerance=0.05, chance=chance)["lr"] == 0.02
    unlearned = {**trial(0.2, 1.15), "val_loss": 0.01}  # at chance: never ranked, whatever its validation loss
    assert trials.choose([*runs, unlearned], tolerance=0.05, chance=chance)["lr"] == 0.006


def test_validation_scores_match_a_hand_computation_in_eval_mode_without_augmentation(tmp_path):
    """Oracle: the first 2 validation batches through the module in eval mode, cross-entropy averaged over batches
    and correct predictions counted by hand; the datamodule sees them as un-augmented batches, and the module is
    back in training mode afterwards."""
    import pytorch_lightning as pl
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from callbacks.range_test.engine import validation_scores
    from range_fixtures import TinyDM, dataset, fit

    class Check(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            plain = trainer.datamodule.plain_batches
            self.got = validation_scores(trainer, pl_module, trainer.datamodule.val_dataloader(), 2)
            self.plain = trainer.datamodule.plain_batches - plain
            self.training_after = pl_module.training
            pl_module.eval()
            with torch.no_grad():
                batches = list(DataLoader(dataset(32, 1), batch_size=8))[:2]
                self.loss = sum(float(F.cross_entropy(pl_module.net(x), y)) for x, y in batches) / 2
                self.acc = sum(int((pl_module.net(x).argmax(1) == y).sum()) for x, y in batches) / 16
            pl_module.train()

    check = Check()
    fit(tmp_path, callbacks=[check], dm=TinyDM(), max_epochs=1, limit_train_batches=1)
    loss, acc, images = check.got
    assert loss == pytest.approx(check.loss, rel=1e-6) and acc == pytest.approx(check.acc) and images == 16
    assert check.plain == 2 and check.training_after


@pytest.mark.parametrize("chance, validated", [(1000.0, True), (0.01, False), (None, False)])
def test_trials_read_validation_only_after_a_trial_near_memorisation_and_leave_the_model_as_it_was(
        tmp_path, monkeypatch, chance, validated):
    """Validation batches are read after a trial only where it ended below NEAR_MEMORISED (10%) of the module's
    chance-level loss (a chance level of 1000: every trial; of 0.01: none; a module without one: none), as many as
    trial_val_batches, without augmentation; the model, optimizer and RNGs end as they were either way."""
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import Snap, TinyDM, TinyNet, assert_same_state, fit

    if chance is not None:
        monkeypatch.setattr(TinyNet, "chance_loss", lambda self: chance, raising=False)
    assert not LRRangeTest(trial_val_batches=2).needs_validation  # read where there is a split; none is needed
    with pytest.raises(ValueError, match="range_test.trial_val_batches"):
        LRRangeTest(trial_val_batches=-1)
    before, after, dm = Snap(), Snap(), TinyDM()
    test = LRRangeTest(min_lr=1e-3, max_lr=1.0, num_steps=20, diverge_factor=None, trial_factors=[0.3, 1.0],
                       trial_min_steps=4, trial_max_steps=4, trial_refine=False, trial_val_batches=3)
    fit(tmp_path, callbacks=[before, test, after], dm=dm, max_epochs=1, limit_train_batches=2)
    done = [t for t in test.result.trials if math.isfinite(t["score"])]
    assert done and test.result.settings["trial_val_batches"] == 3
    assert_same_state(before.state, after.state)
    if not validated:
        assert dm.plain_batches == 0 and not any("val_loss" in t for t in test.result.trials)
        return
    assert all(0.0 <= t["val_acc"] <= 1.0 and round(t["val_acc"] * 24, 6).is_integer() for t in done)
    assert all(math.isfinite(t["val_loss"]) and t["val_loss"] > 0 for t in done)
    assert dm.plain_batches == 3 * len(done)  # 3 un-augmented validation batches after each trial, nothing else
    assert all(t["val_images"] == 24 for t in done)


def test_trials_never_read_a_validation_loader_that_is_the_test_split(tmp_path, monkeypatch):
    """A datamodule that validates on its test split (``validates_on_test``: no validation split of its own, as the
    paper recipes' val_fraction=0) gets no validation pass after the trials: nothing is chosen on a test split."""
    from callbacks.range_test.loss import LRRangeTest
    from range_fixtures import TinyDM, TinyNet, fit

    monkeypatch.setattr(TinyNet, "chance_loss", lambda self: 1000.0, raising=False)  # every trial "memorises"
    dm = TinyDM()
    dm.validates_on_test = True
    test = LRRangeTest(min_lr=1e-3, max_lr=1.0, num_steps=20, diverge_factor=None, trial_factors=[0.3, 1.0],
                       trial_min_steps=4, trial_max_steps=4, trial_refine=False, trial_val_batches=3)
    fit(tmp_path, callbacks=[test], dm=dm, max_epochs=1, limit_train_batches=2)
    assert dm.plain_batches == 0
    assert test.result.trials and not any("val_loss" in t for t in test.result.trials)
