"""max_lr=auto under a schedule whose max_lr must stay above a fixed key (cyclic's base_lr, warm-up's eta_min): the
trials skip peaks the schedule cannot take, every record says so, and a found max_lr at or below it is one error
naming the key."""
import json

import pytest

from callbacks.range_test import trials
from callbacks.run.config_checks import lr_floor
from conftest import compose_config, smoke_overrides
from train import run


def test_candidates_at_or_below_the_floor_are_not_tried():
    assert trials.candidates(0.01, [0.3, 1, 3, 10], above=0.005) == pytest.approx([0.01, 0.03, 0.1])
    assert trials.candidates(0.01, [0.3, 1, 3], above=0.01) == pytest.approx([0.03])  # at the floor: not above it
    assert trials.candidates(0.01, [0.3, 1, 3, 10], cap=0.02, above=0.005) == pytest.approx([0.01])
    # the cap leaves nothing above the floor: the smallest above it stays, not one the schedule would refuse
    assert trials.candidates(0.01, [0.3, 1, 3], cap=0.005, above=0.004) == pytest.approx([0.01])
    # nothing above the floor: the smallest stays (its trial then fails, naming the key)
    assert trials.candidates(0.01, [0.3, 1], above=1.0) == pytest.approx([0.003])


@pytest.mark.parametrize("overrides, expected", [
    (["scheduler=cyclic", "scheduler.base_lr=0.05"], ("base_lr", 0.05)),
    (["scheduler=cyclic", "scheduler.base_lr=0"], None),
    (["scheduler=warmup", "scheduler.eta_min=0.02"], ("eta_min", 0.02)),
    (["scheduler=one_cycle"], None),
])
def test_lr_floor_reads_the_schedules_fixed_key(tmp_path, overrides, expected):
    assert lr_floor(compose_config(smoke_overrides(*overrides), output_dir=tmp_path)) == expected


def test_a_cyclic_auto_run_skips_trials_below_base_lr_and_trains_above_it(tmp_path):
    """It stopped after the sweep ("tried a trial at 0.0797, not above scheduler.base_lr=0.1") when the lowest
    candidate fell below a fixed base_lr, even where the others and the answer lay above it."""
    cfg = compose_config(smoke_overrides("scheduler=cyclic", "scheduler.max_lr=auto", "scheduler.base_lr=0.01",
                                         "scheduler.step_size_up=1", "range_test.num_steps=30",
                                         "range_test.min_lr=0.05", "range_test.max_lr=5",
                                         "range_test.trial_factors=[0.001,1]"), output_dir=tmp_path)
    run(cfg)
    saved = json.loads((tmp_path / "lr_range_test.json").read_text())
    tried = [t["lr"] for t in saved["trials"]]
    loss_min = saved["suggestions"]["loss_min"]
    assert loss_min * 0.001 < 0.01 < loss_min  # the setting tests what it means to: one candidate below the floor
    assert tried and min(tried) > 0.01 and saved["settings"]["trial_floor"] == 0.01
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["lr"]["max_lr"] > 0.01
    assert "0.001x not tried: at or below the schedule's lowest peak 0.01" in result["lr"]["source"]


def test_a_cyclic_max_lr_auto_below_a_fixed_base_lr_says_what_to_set(tmp_path, monkeypatch):
    """scheduler=cyclic with max_lr=auto and a fixed base_lr above a trial's peak, or above what the search found
    (or warm-up's eta_min above it): one error naming both keys and what to do (it was the schedule's bare "max_lr must be > base_lr"); no training."""
    import train
    from callbacks.range_test.result import RangeTestResult

    cyclic = smoke_overrides("scheduler=cyclic", "scheduler.max_lr=auto", "range_test.num_steps=20",
                             "scheduler.step_size_up=1")
    with pytest.raises(ValueError, match=r"scheduler.max_lr=auto would try a trial at [0-9.e+-]+, not above "
                                         r"scheduler.base_lr=50: lower scheduler.base_lr .* scheduler.base_lr=auto"):
        run(compose_config([*cyclic, "scheduler.base_lr=50"], output_dir=tmp_path / "trial"))
    assert not (tmp_path / "trial" / "checkpoints").exists()
    searched = RangeTestResult(kind="loss", lrs=[0.01, 0.1, 1.0], losses=[2.3, 1.0, 9.0], smoothed=[2.3, 1.0, 9.0],
                               suggestions={"loss_min": 0.1, "trials": 0.05}, rule="trials", lr=0.05,
                               settings={"suggestion": "loss_min"}, search_steps=60, elapsed_s=1.0,
                               trials=[{"lr": 0.05, "score": 1.0, "learned": True, "chance_loss": 2.3,
                                        "steps": 20, "planned_steps": 20}])
    monkeypatch.setattr(train, "run_range_test", lambda cfg, model, datamodule: searched)
    with pytest.raises(ValueError, match=r"scheduler.max_lr=auto found 0.05, not above scheduler.base_lr=0.1"):
        run(compose_config([*cyclic, "scheduler.base_lr=0.1"], output_dir=tmp_path / "found"))
    assert not (tmp_path / "found" / "checkpoints").exists()
    # warm-up's eta_min, the same way (it was the schedule's bare "eta_min must be in [0, max_lr)")
    warmup = smoke_overrides("scheduler=warmup", "scheduler.max_lr=auto", "scheduler.warmup_length=1",
                             "scheduler.eta_min=0.1")
    with pytest.raises(ValueError, match=r"scheduler.max_lr=auto found 0.05, not above scheduler.eta_min=0.1: "
                                         r"lower scheduler.eta_min"):
        run(compose_config(warmup, output_dir=tmp_path / "warmup"))
    assert not (tmp_path / "warmup" / "checkpoints").exists()


def test_no_trial_learning_above_the_floor_is_no_evidence_and_says_to_lower_it():
    """AdamW with cyclic's default base_lr 0.1 (an SGD value): the loss minimum at 0.033, the 0.3x-3x candidates
    at or below 0.1 not tried, the two above it at chance: auto trained at 0.104, at chance (val/acc 0.33 on three
    classes). That search found nothing above the floor: it is no evidence, naming the floor."""
    from callbacks.range_test.result import RangeTestResult

    def result(floor, learned=False):
        tried = [0.104, 0.327] if floor else [0.0098, 0.033, 0.098, 0.327]
        return RangeTestResult(kind="loss", lrs=[1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0], losses=[1.1] * 6,
                               smoothed=[1.1] * 6, suggestions={"loss_min": 0.0327, "trials": 0.104}, rule="trials",
                               lr=0.104, settings={"suggestion": "loss_min", "trial_factors": [0.3, 1, 3, 10],
                                                   "trial_floor": floor},
                               trials=[{"lr": lr, "score": 1.1, "learned": learned and lr == tried[0],
                                        "chance_loss": 1.0986} for lr in tried])

    reason = result(0.1).no_evidence
    assert "candidates at or below the schedule's lowest peak 0.1" in reason and "lower that key" in reason
    assert result(0.1, learned=True).no_evidence == ""  # a trial above the floor learned: the trials chose
    assert result(None).no_evidence == ""  # no floor, a minimum inside the sweep: the rule's LR means something
