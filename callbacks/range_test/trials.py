"""Short trials that choose ``max_lr`` among candidates read off the range-test curve.

Why: on the 14 settings of issue 20 the best one-cycle peak sat anywhere from 0.3x to 11x the range test's loss
minimum, and no single multiple of it (or of any other point of the curve) held everywhere (a one-cycle run warms
up, so it tolerates peaks that make the loss rise in a fast ramp; but on some data 3x is already too far). So the
curve only proposes: ``factors`` x the rule's LR
(default 0.3x, 1x, 3x, 10x the loss minimum). Each candidate then trains a short run of the run's own schedule
shape (compressed to ``steps`` optimizer steps, enough to see at least 3,200 images by default) from the same
initial weights, on the same batches (same seed), and the candidate with the lowest training loss over the last
quarter of its trial wins, unless a larger candidate is not clearly worse (by two standard errors of the paired
per-batch differences, or by less than ``tolerance``, 5%, of the best score; by the paired test alone when the best
trial ended 18% or more below chance-level loss): then the larger one wins. A short trial favours small peaks (a
larger peak needs more steps to settle than the trial gives it; the short-horizon bias), hence the tolerance. Then one
refinement trial at the geometric midpoint between the winner and the next larger candidate that trained without
diverging (the candidates are 3x apart; on drawn shapes the best peak sat between 3x and 10x) joins the choice by the
same rule. A trial counts only when it ends at least 1% below the model's chance-level loss (:data:`CHANCE_MARGIN`);
when none does, an SGD-family optimizer trains at the range test's rise point, where its loss first stands 10% above
its lowest (:func:`untrained_fallback`), and with the Adam family the trials descend below the lowest candidate until
one does, else use the rule's LR. The chosen trial's LR is returned as it is, also where the trials barely learned
(v7 multiplied it by 1.25 there; on three held-out settings of two other networks that cost 3.3 +/- 1.4 test points,
RESULTS.md 2026-12-01, v14). Where a trial learned, :class:`~callbacks.range_test.loss.LRRangeTest` then trains at the
geometric mean of that choice and the range test's update point (:mod:`callbacks.range_test.update_size`, v17).
The training loss of batches it has not trained on yet (a trial is shorter than an epoch on all but tiny sets) needs
no validation split; only where every trial memorised the training set (:data:`MEMORISED`) does their validation loss
rank them (v21), read from a validation split of the data's own, never a test split.

Pure, tested on numbers alone; :mod:`callbacks.range_test.trial_runs` runs the trials.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

from callbacks.schedules.shapes import one_cycle

__all__ = ["check_trial_settings", "learned", "candidates", "refinement", "trial_length", "chance_level",
           "trial_score", "tail", "beats", "choose", "default_schedule", "describe", "share_below", "weak",
           "below_chance", "adam_family", "none_learned", "untrained_fallback", "memorised", "near_memorised",
           "validated", "ScheduleFactory", "LADDER", "LADDER_STEPS", "CHANCE_MARGIN", "RISE_SHARE", "WEAK_PROGRESS",
           "STRONG_TOLERANCE", "MEMORISED", "NEAR_MEMORISED"]

#: when no candidate ended below chance-level loss: the trials descend from the lowest one by this factor, at most
#: this many times (3 decades); found where a range test's minimum sat on a chance plateau at LR 0.8-2 (issue 20)
LADDER, LADDER_STEPS = math.sqrt(10.0), 6

#: a trial counts as learned only when it ends at least this share of the chance-level loss below it: a model that
#: predicts the class prior scores a hair under chance. On two held-out drawn sets (issue 20, RESULTS.md 2026-12-01
#: 17:36) trials 0.005% and 0.42% below chance counted as learned and were chosen: auto trained at chance (+43
#: points) and at 9x the sweep's best (+10); the long-trial probe's collapse (16:16) stopped on one 0.55% below
CHANCE_MARGIN = 0.01

#: a best trial that ended less than this share of the chance-level loss below it is a weak signal: on the issue-20
#: benchmark (RESULTS.md 2026-12-01, v6) the 36 auto runs whose trials ended 1-16% below chance missed the sweep's
#: best by +1.95 +/- 0.56 points, worst +11.4; the 37 at 19-44% by +0.17 +/- 0.20, worst +2.7
WEAK_PROGRESS = 0.18
#: when the best trial ended at least WEAK_PROGRESS below chance (the trials learned well), a larger candidate is kept
#: only within this share of the best score (or ``tolerance``, if smaller), or when the paired test cannot tell it
#: from the best: on CIFAR at batch 16-32 the 5% tolerance kept candidates 1-11x the sweep's best (v6 took 3%); with
#: none, the worst seed of six CIFAR settings went from +0.3..+2.7 to +0.0..+2.8 points, five of six within 2, and
#: two held-out settings gained +0.38 +/- 0.18 test points (issue 20, RESULTS.md 2026-12-01, v8)
STRONG_TOLERANCE = 0.0

#: a best trial that ended below this share of the chance-level loss memorised the training set: every candidate's
#: training loss is about 0 and cannot rank peaks by how they generalise, so their validation loss ranks them (v21,
#: :func:`choose`). On two easy drawn sets whose every trial memorised, ranked on paper off each seed's sweep, that
#: read +3.4 +/- 1.6 test points over the training loss (6 runs); held out, in real runs, +2.47 +/- 1.05 on a third
#: set and nothing measurable on a fourth or with AdamW (9 pairs: +0.71 +/- 0.57; RESULTS.md 2026-12-03 16:34-17:55)
MEMORISED = 0.01
#: a trial that ended below this share of the chance-level loss may have memorised the training set: only after such a
#: trial is the validation split read (where the best memorised, these rank by validation loss): a validation pass
#: after every trial cost 15% of the search on drawn shapes with 50-step trials (RESULTS.md 2026-12-03 16:34), while
#: on issue 20's benchmark the best trial ended above 56% of chance on 276 of 282 recorded auto runs (1-3% on the
#: other 6, the two tiniest settings). On the easy sets of v21 the trials that won by validation loss had ended at
#: 0.2-2.1% of chance
NEAR_MEMORISED = 0.1

#: when no trial learned with an SGD-family optimizer, auto trains at the range test's rise point, where the smoothed
#: loss first stands this share above its lowest so far (v10): on the 10 such runs of issue 20's benchmark it read
#: +2.6 +/- 1.0 points off the sweep's best (5%: +4.4, 20%: +5.0), the rule's LR +8.0 +/- 0.8; over 91 SGD-family runs
#: the best peak sat at 0.85x it (log10 sd 0.29); the Adam family's at 1/7 of it, near the loss minimum (RESULTS.md
#: 2026-12-01 18:47, v10)
RISE_SHARE = 0.1

#: schedule_factory(max_lr=peak) -> schedule(step, total_steps, [steps_per_epoch]) -> (lr, momentum or None)
ScheduleFactory = Callable[[float], Callable[..., Any]]


def check_trial_settings(factors: Optional[Sequence[float]], fraction: float, min_steps: int,
                         max_steps: int, tolerance: float = 0.0, refine: bool = False, min_images: int = 0,
                         val_batches: int = 0) -> List[float]:
    """The trial factors as floats (``[]`` for none); a clear error naming the ``range_test.trial_*`` key."""
    factors = list(factors or [])
    if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in factors):
        raise ValueError(f"range_test.trial_factors must be a list of numbers > 0 (or null), got {factors!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"range_test.trial_fraction must be in (0, 1], got {fraction!r}")
    if not (isinstance(min_steps, int) and isinstance(max_steps, int) and 4 <= min_steps <= max_steps):
        raise ValueError("range_test.trial_min_steps and trial_max_steps must be integers with 4 <= min <= max, "
                         f"got {min_steps!r} and {max_steps!r}")
    if isinstance(min_images, bool) or not (isinstance(min_images, int) and min_images >= 0):
        raise ValueError("range_test.trial_min_images must be an integer >= 0 (0: no floor in images), "
                         f"got {min_images!r}")
    if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise ValueError(f"range_test.trial_tolerance must be a fraction in [0, 1), got {tolerance!r}")
    if isinstance(val_batches, bool) or not (isinstance(val_batches, int) and val_batches >= 0):
        raise ValueError(f"range_test.trial_val_batches must be an integer >= 0 (0: none), got {val_batches!r}")
    if not isinstance(refine, bool):
        raise ValueError(f"range_test.trial_refine must be true or false, got {refine!r}")
    return [float(f) for f in factors]


def default_schedule(max_lr: float) -> Callable[..., Any]:
    """One-cycle with torch's ``OneCycleLR`` defaults, when the caller gives no schedule (``find_lr`` in Python)."""
    return partial(one_cycle, max_lr=max_lr)


def candidates(base_lr: float, factors: Sequence[float], cap: Optional[float] = None,
               above: Optional[float] = None) -> List[float]:
    """``base_lr x factor`` for each factor, in rising order, without repeats; those at or above ``cap`` (the LR
    where the range test saw the loss blow up, or its last LR if it never did) are dropped, but the smallest
    candidate always stays. At the cap itself: where the loss minimum sat at the sweep's last LR (the loss still
    falling there), its 1x is not tried: on the airbench net such trials could not tell peaks 1-10 apart (0.98:
    1.791, 9.82: 1.816) and would keep the largest, where the best peak sat at 0.4-1.6 (issue 20, RESULTS.md
    2026-12-01 22:47). Those at or below ``above`` (the lowest peak the run's schedule can take: a cyclic schedule's
    fixed ``base_lr``) are dropped first; when none is left, the smallest stays (the schedule then refuses it, naming
    its key)."""
    values = sorted({float(base_lr) * float(f) for f in factors})
    trainable = [v for v in values if above is None or v > above * (1 + 1e-9)] or values[:1]
    kept = [v for v in trainable if cap is None or v < cap * (1 - 1e-9)]  # 1e-9: the minimum's geometric mean rounds
    return kept or trainable[:1]


def refinement(trials: Sequence[Dict[str, Any]], chosen: float) -> Optional[float]:
    """The geometric midpoint between ``chosen`` and the next larger candidate that trained to the end without
    diverging (finite score); ``None`` when there is none."""
    above = [t["lr"] for t in trials if t["lr"] > chosen and math.isfinite(t["score"])]
    return math.sqrt(chosen * min(above)) if above else None


def trial_length(run_steps: Optional[float], fraction: float, min_steps: int, max_steps: int, min_images: int = 0,
                 images_per_step: Optional[int] = None) -> int:
    """Optimizer steps of each trial: ``fraction`` of the training run's steps, at least ``min_steps`` and at least
    enough steps to see ``min_images`` training images (when ``images_per_step`` is known), at most ``max_steps``
    (``max_steps`` when the run's length is unknown). A trial learns per image more than per step: at batch 32, 50
    steps ended at chance level where 100 did not (issue 20)."""
    if run_steps is None or not math.isfinite(run_steps):
        return int(max_steps)
    floor = max(min_steps, math.ceil(min_images / images_per_step) if min_images and images_per_step else 0)
    return int(min(max(round(fraction * run_steps), floor), max_steps))


def tail(losses: Sequence[float], fraction: float = 0.25) -> List[float]:
    """The last ``fraction`` of a trial's losses (at least 2)."""
    n = max(2, int(math.ceil(fraction * len(losses))))
    return list(losses)[-n:]


def trial_score(losses: Sequence[float], fraction: float = 0.25) -> float:
    """Mean training loss over the last ``fraction`` of a trial (at least 2 steps); ``inf`` if any loss in the
    trial was not finite (it diverged)."""
    if not losses or not all(math.isfinite(x) for x in losses):
        return math.inf
    last = tail(losses, fraction)
    return sum(last) / len(last)


def beats(a: Sequence[float], b: Sequence[float], z: float = 2.0) -> bool:
    """Whether trial ``a``'s tail losses are lower than ``b``'s by more than ``z`` standard errors of their paired
    differences (both trials saw the same batches in the same order, so a batch's difficulty cancels out). A trial
    ``b`` that diverged, or ended above the loss it started from, is always beaten."""
    if not all(math.isfinite(x) for x in b) or trial_score(b) > b[0]:
        return True
    diffs = [y - x for x, y in zip(tail(a), tail(b))]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1))
    return mean > z * sd / math.sqrt(len(diffs))


def learned(losses: Sequence[float], drop: float = 0.05, chance: Optional[float] = None) -> bool:
    """Whether a trial's loss fell: the mean of its last quarter at least ``drop`` (5%) below the mean of its first
    three steps and, when the module says its chance-level loss (:func:`chance_level`), at least
    :data:`CHANCE_MARGIN` (1%) of it below that. A trial too short to learn anything on this data says nothing about
    its LR; one that ends at chance level (a randomly initialised classifier starts above it, so falling to it is no
    sign of learning, and predicting the class prior scores a hair under it) neither."""
    end = tail(losses)
    if len(losses) < 3 or not all(math.isfinite(x) for x in end):
        return False
    start, mean = sum(losses[:3]) / 3, sum(end) / len(end)
    return mean < (1.0 - drop) * start and (chance is None or mean < (1.0 - CHANCE_MARGIN) * chance)


def chance_level(pl_module: Any) -> Optional[float]:
    """``pl_module.chance_loss()``, the loss of a constant prediction (the project's ``Classifier`` has it), or
    ``None`` when the module does not say."""
    chance = getattr(pl_module, "chance_loss", None)
    value = chance() if callable(chance) else None
    return float(value) if value is not None and math.isfinite(float(value)) else None


def choose(trials: Sequence[Dict[str, Any]], z: float = 2.0, tolerance: float = 0.0,
           chance: Optional[float] = None) -> Dict[str, Any]:
    """Among the trials whose loss fell (:func:`learned`), the largest LR that the lowest-scoring one does not
    clearly beat (:func:`beats`, paired over the same batches) or whose score is within ``tolerance`` (a fraction)
    of the lowest (at most :data:`STRONG_TOLERANCE`, none, when the lowest ended :data:`WEAK_PROGRESS` or more below
    ``chance``): where trials cannot tell candidates apart, the larger peak, which regularises more over a whole
    run and which a short trial undervalues, is kept. When no trial learned anything (too short for
    this data), the candidate nearest the rule's own LR (factor 1). Without per-step ``losses``: the lowest score.
    ``chance``: see :func:`learned`. Where the best trial memorised the training set (:func:`memorised`) and has a
    validation loss (``val_loss``: read after each trial that ended :func:`near_memorised`), the lowest validation
    loss among the trials that have one wins (ties: the larger LR; v21)."""
    finite = [t for t in trials if math.isfinite(t["score"])]
    if not finite:
        raise RuntimeError("every max_lr trial diverged: lower range_test.max_lr or range_test.trial_factors")
    if any("losses" not in t for t in finite):
        return min(finite, key=lambda t: (t["score"], -t["lr"]))
    informative = [t for t in finite if learned(t["losses"], chance=chance)]
    if not informative:
        return min(trials, key=lambda t: abs(math.log(t.get("factor", 1.0))))
    best = min(informative, key=lambda t: (t["score"], -t["lr"]))
    if memorised(best["score"], chance) and math.isfinite(best.get("val_loss", math.nan)):
        return min(validated(informative), key=lambda t: (t["val_loss"], -t["lr"]))
    if chance and not weak(share_below(best["score"], chance)):
        tolerance = min(tolerance, STRONG_TOLERANCE)  # trials that learned well rank peaks as the full run does
    close = best["score"] + tolerance * abs(best["score"])
    ties = [t for t in informative
            if t is best or t["score"] <= close or not beats(best["losses"], t["losses"], z)]
    return max(ties, key=lambda t: t["lr"])


def memorised(score: float, chance: Optional[float]) -> bool:
    """Whether a trial's ``score`` (its training loss at the end) lies below :data:`MEMORISED` of the chance-level
    loss ``chance`` (``None``: not known, never)."""
    return bool(chance) and score < MEMORISED * chance


def validated(trials: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The trials with a finite validation loss (``val_loss``)."""
    return [t for t in trials if math.isfinite(t.get("val_loss", math.nan))]


def near_memorised(score: float, chance: Optional[float]) -> bool:
    """Whether a trial's ``score`` lies below :data:`NEAR_MEMORISED` of the chance-level loss ``chance`` (``None``:
    not known, never): the trials whose validation loss is read (v21)."""
    return bool(chance) and score < NEAR_MEMORISED * chance


def adam_family(optimizers: Sequence[Any]) -> bool:
    """Whether any of the optimizers keeps Adam-style moment estimates: a parameter group with ``betas`` (Adam,
    AdamW, Adamax, NAdam, RAdam, ...); SGD, Nesterov, Adagrad and RMSprop do not."""
    return any("betas" in group for opt in optimizers for group in getattr(opt, "param_groups", []))


def untrained_fallback(trials: Sequence[Dict[str, Any]], rise: Optional[float], adaptive: bool) -> Optional[float]:
    """The max_lr when no trial learned (none ``learned``, as :func:`trials_after_sweep` records it) and the
    optimizer is not of the Adam family (``adaptive`` False): the range test's rise point ``rise``
    (:func:`callbacks.range_test.suggestions.rise_point`); ``None`` otherwise (then :func:`choose` stands: the
    rule's LR when nothing learned). :data:`RISE_SHARE` says why."""
    if rise is None or adaptive or not none_learned(trials):
        return None
    return float(rise)


def none_learned(trials: Sequence[Dict[str, Any]]) -> bool:
    """Whether there were trials and none of them learned (their ``learned`` field, as :func:`trials_after_sweep`
    records it)."""
    return bool(trials) and not any(t.get("learned") for t in trials)


def share_below(score: float, chance: float) -> float:
    """How far ``score`` lies below the chance-level loss ``chance`` (> 0), as a share of it."""
    return (chance - score) / chance


def weak(share: Optional[float]) -> bool:
    """Whether the best trial's distance below the chance-level loss (:func:`share_below`, :func:`below_chance`)
    is a weak signal: under :data:`WEAK_PROGRESS` (``None``, no chance level or no trial that learned, is not)."""
    return share is not None and share < WEAK_PROGRESS


def below_chance(trials: Sequence[Dict[str, Any]]) -> Optional[float]:
    """How far below the chance-level loss the best trial that learned ended, as a share of it: ``(chance - score)
    / chance``; ``None`` when the trials do not say their chance level (a module without ``chance_loss``) or none
    learned. Below :data:`WEAK_PROGRESS` the trials barely learned and rank peaks poorly."""
    scored = [t for t in trials if t.get("learned") and t.get("chance_loss") and math.isfinite(t["score"])]
    if not scored:
        return None
    return share_below(min(t["score"] for t in scored), scored[0]["chance_loss"])


def describe(trials: Sequence[Dict[str, Any]], chosen: float) -> str:
    """One line: each candidate with its score, the chosen one marked."""
    return ", ".join(f"{t['lr']:.3g}: {t['score']:.4f}" + (" (chosen)" if t["lr"] == chosen else "")
                     for t in trials)
