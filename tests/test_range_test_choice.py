"""callbacks/range_test/choice.py: the LR max_lr=auto trains at, on hand-made records whose answer is worked out
by hand (no trials: the rule; trials that learned: the geometric mean with the update point; none learned: the rise
point with SGD, the rule's candidate with Adam; over repeats: geometric means)."""
import math

import pytest

from callbacks.range_test.choice import chosen_lr, over_repeats, repeats_update_point

LRS = [0.001, 0.01, 0.1, 1.0]
UPDATES = [0.001, 0.02, 0.05, 0.5]  # the first step past 3% of the weights' norm: lr 0.1


def trial(lr, score, learned, factor):
    return {"lr": lr, "score": score, "learned": learned, "factor": factor, "chance_loss": 2.3}


def raw(trials=None, rise=None, adaptive=False, runs=None):
    return {"runs": runs or [{"lrs": LRS, "updates": UPDATES}], "trials": trials, "rise": rise,
            "adaptive": adaptive}


def test_without_trials_the_rule_is_the_answer():
    rule, lr, suggestions, carry = chosen_lr(raw(), {"loss_min": 0.02, "steepest": 0.005}, "loss_min", 0.05, 0.03)
    assert (rule, lr, carry) == ("loss_min", 0.02, {}) and suggestions == {"loss_min": 0.02, "steepest": 0.005}


def test_a_learned_trial_is_blended_with_the_update_point():
    trials = [trial(0.006, 1.9, True, 0.3), trial(0.02, 1.5, True, 1.0), trial(0.06, 2.1, True, 3.0)]
    rule, lr, suggestions, _ = chosen_lr(raw(trials, rise=0.3), {"loss_min": 0.02}, "loss_min", 0.0, 0.03)
    assert rule == "blend" and lr == pytest.approx(math.sqrt(0.02 * 0.1))  # trials chose 0.02, update point 0.1
    assert suggestions == {"loss_min": 0.02, "trials": 0.02, "rise": 0.3, "update": pytest.approx(0.1),
                           "blend": pytest.approx(math.sqrt(0.002))}
    rule, lr, _, _ = chosen_lr(raw(trials), {"loss_min": 0.02}, "loss_min", 0.0, None)  # update_share=None: no blend
    assert (rule, lr) == ("trials", 0.02)


@pytest.mark.parametrize("adaptive, expected", [(False, ("rise", 0.3)), (True, ("trials", 0.02))])
def test_where_no_trial_learned_sgd_takes_the_rise_point_and_adam_the_rules_candidate(adaptive, expected):
    trials = [trial(0.006, 2.31, False, 0.3), trial(0.02, 2.30, False, 1.0), trial(0.06, 2.4, False, 3.0)]
    rule, lr, suggestions, _ = chosen_lr(raw(trials, rise=0.3, adaptive=adaptive), {"loss_min": 0.02}, "loss_min",
                                         0.05, 0.03)
    assert (rule, lr) == expected and "blend" not in suggestions  # nothing learned: no blend


def test_repeats_give_geometric_means_and_a_missing_point_gives_none():
    assert over_repeats([0.01, 1.0]) == pytest.approx(0.1) and over_repeats([0.01, None]) is None
    runs = [{"lrs": LRS, "updates": UPDATES}, {"lrs": LRS, "updates": [0.0, 0.0, 0.0, 0.04]}]
    assert repeats_update_point(runs, 0.03) == pytest.approx(math.sqrt(0.1 * 1.0))
    assert repeats_update_point(runs, None) is None and repeats_update_point([{"lrs": LRS}], 0.03) is None


def test_a_sweep_that_never_moved_the_weights_three_percent_blends_only_where_it_stopped():
    """A tiny, easy set: the training loss sat near 0 up to the sweep's last LR 10, and no step moved the weights
    3%: the point would be the configured end, so the trials' choice stands; a sweep whose loss blew up there keeps
    its stop LR as the point."""
    trials = [trial(0.006, 1.9, True, 0.3), trial(0.02, 1.5, True, 1.0)]
    small = {"lrs": LRS, "updates": [0.001] * 4}
    rule, lr, suggestions, _ = chosen_lr(raw(trials, runs=[{**small, "stop_index": None}]), {"loss_min": 0.02},
                                         "loss_min", 0.0, 0.03)
    assert (rule, lr) == ("trials", 0.02) and "update" not in suggestions
    rule, lr, _, _ = chosen_lr(raw(trials, runs=[{**small, "stop_index": 3}]), {"loss_min": 0.02}, "loss_min", 0.0,
                               0.03)
    assert rule == "blend" and lr == pytest.approx(math.sqrt(0.02 * 1.0))


def test_an_update_point_where_the_loss_was_about_zero_does_not_count():
    """The easy set's seed 1 (RESULTS.md 2026-12-03 14:44): the loss sat at 3e-5 from LR 0.01 on, and only the last
    step (LR 10) moved the weights past 3%: memorised, the gradient gone, the point says nothing (v20). The same
    point where the loss stood at 1% of chance or more counts."""
    trials = [{**trial(0.006, 0.01, True, 0.3), "chance_loss": 1.0986}, {**trial(0.06, 0.0003, True, 10.0),
                                                                          "chance_loss": 1.0986}]
    flat = {"lrs": LRS, "updates": [0.001, 0.002, 0.01, 0.0302], "stop_index": None,
            "smoothed": [1.1, 0.3, 3e-5, 3e-5]}
    rule, lr, suggestions, _ = chosen_lr(raw(trials, runs=[flat]), {"loss_min": 0.02}, "loss_min", 0.0, 0.03)
    assert (rule, lr) == ("trials", 0.06) and "update" not in suggestions
    standing = {**flat, "smoothed": [1.1, 0.3, 0.05, 0.0111]}  # 0.0111 >= 1% of 1.0986
    rule, lr, _, _ = chosen_lr(raw(trials, runs=[standing]), {"loss_min": 0.02}, "loss_min", 0.0, 0.03)
    assert rule == "blend" and lr == pytest.approx(math.sqrt(0.06 * 1.0))
    assert repeats_update_point([flat], 0.03) == 1.0  # without a chance level: the point as measured
