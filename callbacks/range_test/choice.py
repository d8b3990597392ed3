"""Which LR ``max_lr=auto`` trains at, from what the range test measured: the whole method in one place.

In order (each step names the rule that ends up in ``RangeTestResult.rule``): the curve's rule (``loss_min`` by
default) proposes; where trials ran, their choice (``trials``, :func:`callbacks.range_test.trials.choose`); where no
trial learned with an SGD-family optimizer, the curve's rise point instead (``rise``, v10); where a trial learned,
the geometric mean of that choice and the update point (``blend``, v17, :mod:`callbacks.range_test.update_size`),
unless the range test measured none: no step moved the weights that far before its configured end (v19), or only
where its loss was about 0 (v20);
with Adagrad, each measured LR carried to the run's peak (v18, :mod:`callbacks.range_test.step_count`). The
evidence for each step is in the module named and in benchmarks/RESULTS.md (issue 20).

Pure: numbers in, numbers out (tested through :class:`~callbacks.range_test.loss.LRRangeTest` and on its own).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from callbacks.range_test.step_count import carried
from callbacks.range_test.trials import choose, none_learned, untrained_fallback
from callbacks.range_test.update_size import blend, update_point

__all__ = ["over_repeats", "repeats_update_point", "chosen_lr"]


def over_repeats(values: List[Optional[float]]) -> Optional[float]:
    """The geometric mean of one LR per repeat of the sweep; ``None`` when a repeat has none."""
    return None if None in values else float(np.exp(np.mean(np.log(values))))


def repeats_update_point(runs: List[Dict[str, Any]], share: Optional[float],
                         chance: Optional[float] = None) -> Optional[float]:
    """The update point (:func:`~callbacks.range_test.update_size.update_point`), the geometric mean over repeats;
    ``None`` when ``share`` is ``None`` or a repeat has none: it recorded none, ran to its end without a step that
    moved the weights that far, or (given the chance-level loss ``chance``) its smoothed loss there stood below
    :data:`~callbacks.range_test.update_size.FLAT_LOSS` of chance (v20)."""
    if share is None:
        return None
    return over_repeats([update_point(run["lrs"], run.get("updates", []), share,
                                      stopped=run.get("stop_index") is not None, losses=run.get("smoothed"),
                                      chance=chance) for run in runs])


def chosen_lr(raw: Dict[str, Any], suggestions: Dict[str, float], suggestion: str, tolerance: float,
              update_share: Optional[float]) -> Tuple[str, float, Dict[str, float], Dict[str, Any]]:
    """``(rule, lr, suggestions, carry)`` from the sweep's ``raw`` record (its ``runs``, and where trials ran their
    ``trials``, the ``rise`` point, whether the optimizer is ``adaptive`` and Adagrad's ``carry``) and the curve's
    ``suggestions``: ``suggestions`` gains what each step read (``trials``, ``rise``, ``update``, ``blend``);
    ``carry`` gains the ``factor`` the carry applied (empty where none did)."""
    rule, lr = suggestion, float(suggestions[suggestion])
    trials = raw.get("trials")
    if trials:
        chance = trials[0].get("chance_loss")
        lr = choose(trials, tolerance=tolerance, chance=chance)["lr"]
        rule, rise = "trials", raw["rise"]
        suggestions = {**suggestions, "trials": lr, **({"rise": rise} if rise is not None else {})}
        fallback = untrained_fallback(trials, rise, raw["adaptive"])
        if fallback is not None:  # no trial learned, SGD family: the curve's rise point (v10)
            rule, lr = "rise", fallback
        point = repeats_update_point(raw["runs"], update_share, chance)
        if point is not None and not none_learned(trials):  # a trial learned: blend (v17)
            rule, lr = "blend", blend(lr, point)
            suggestions = {**suggestions, "update": point, "blend": lr}
    carry = dict(raw.get("carry") or {})
    if carry:  # Adagrad: each measured LR carried to the run's LR peak (v18)
        measured, lr = lr, carried(rule, suggestions, raw["runs"][0]["lrs"], carry["run_peak"],
                                   carry["trial_peak"], carry["lr_decay"])
        carry["factor"] = lr / measured
    return rule, lr, suggestions, carry
