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
no validation split, so nothing is chosen on a test split when a data set validates on it. Between trials and at
the end everything is restored exactly as after the range test (:mod:`callbacks.range_test.state`).

Everything but :func:`run_trials` is pure and tested on numbers alone.
"""
from __future__ import annotations

import inspect
import math
from contextlib import closing
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

from callbacks.range_test.progress import progress_task
from callbacks.schedules.lr_schedule import momentum_key, optimizer_steps_per_epoch, set_momentum
from callbacks.schedules.shapes import one_cycle

__all__ = ["check_trial_settings", "trials_after_sweep", "learned", "candidates", "refinement", "trial_length",
           "images_per_step", "chance_level", "trial_score", "tail", "beats", "choose", "run_trials",
           "default_schedule", "describe", "share_below", "weak", "below_chance", "adam_family",
           "none_learned", "untrained_fallback", "bound_schedule", "trial_shape", "CHANCE_MARGIN", "RISE_SHARE",
           "WEAK_PROGRESS", "STRONG_TOLERANCE", "MEMORISED", "memorised", "own_validation"]

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
#: read +3.4 +/- 1.6 test points over the training loss (6 runs; RESULTS.md 2026-12-03 16:40)
MEMORISED = 0.01

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


def images_per_step(trainer: Any) -> Optional[int]:
    """Training images behind one optimizer step, over all ranks: the train loader's batch size (its own, its batch
    sampler's, or that of a sampler that yields whole batches, as ``datamodules.batches`` does) x
    ``accumulate_grad_batches`` x world size; ``None`` when none of them says."""
    from callbacks.range_test.engine import first_loader

    loader = first_loader(trainer.train_dataloader)
    sizes = [getattr(getattr(loader, part, None) if part else loader, "batch_size", None)
             for part in (None, "batch_sampler", "sampler")]
    batch = next((b for b in sizes if isinstance(b, int) and not isinstance(b, bool) and b >= 1), None)
    if batch is None:
        return None
    return batch * max(int(trainer.accumulate_grad_batches), 1) * max(int(getattr(trainer, "world_size", 1)), 1)


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
    ``chance``: see :func:`learned`. Where the best trial memorised the training set (:func:`memorised`) and every
    trial that learned has a validation loss (``val_loss``, :func:`run_trials`), the lowest validation loss wins
    (ties: the larger LR; v21)."""
    finite = [t for t in trials if math.isfinite(t["score"])]
    if not finite:
        raise RuntimeError("every max_lr trial diverged: lower range_test.max_lr or range_test.trial_factors")
    if any("losses" not in t for t in finite):
        return min(finite, key=lambda t: (t["score"], -t["lr"]))
    informative = [t for t in finite if learned(t["losses"], chance=chance)]
    if not informative:
        return min(trials, key=lambda t: abs(math.log(t.get("factor", 1.0))))
    best = min(informative, key=lambda t: (t["score"], -t["lr"]))
    if memorised(best["score"], chance) and all(math.isfinite(t.get("val_loss", math.nan)) for t in informative):
        return min(informative, key=lambda t: (t["val_loss"], -t["lr"]))
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


def own_validation(trainer: Any) -> bool:
    """Whether the run validates on a split of its own: it has a validation loader, and its datamodule does not say
    that the loader is the test split (``validates_on_test``: a data set without a validation split, the paper
    recipes' "train on all, test at the end"). The trials are never ranked on a test split."""
    from callbacks.range_test.engine import val_loader

    if getattr(trainer.datamodule, "validates_on_test", False):
        return False
    try:
        return val_loader(trainer) is not None
    except ValueError:
        return False


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


def bound_schedule(schedule: Callable[..., Any], total: int, steps_per_epoch: Optional[float]) -> Callable[[int], Any]:
    """``step -> schedule(step, total[, steps_per_epoch])``, its signature read once rather than every step."""
    if "steps_per_epoch" in inspect.signature(schedule).parameters:
        return lambda step: schedule(step, total, steps_per_epoch=steps_per_epoch)
    return lambda step: schedule(step, total)


def trial_shape(trainer: Any, length: tuple) -> tuple:
    """Each trial's optimizer steps (``trial_length(run steps, *length, images_per_step)``, the run's steps being
    the trainer's ``estimated_stepping_batches``) and its epoch in steps: the run's epoch compressed by the same
    ratio, so that an epoch-based schedule keeps its shape (``None`` for a loader without a length)."""
    run_steps = float(trainer.estimated_stepping_batches)
    steps = trial_length(run_steps, *length, images_per_step=images_per_step(trainer))
    per_epoch = optimizer_steps_per_epoch(trainer)
    return steps, per_epoch * steps / run_steps if per_epoch and math.isfinite(run_steps) else None


def check_fits_trials(trainer: Any, schedule: ScheduleFactory, peak: float, length: tuple,
                      whole_run: bool = False) -> None:
    """The schedule at ``peak``, bound as the trials will run it (:func:`trial_shape`) and evaluated once, before
    the sweep: a shape that cannot fit (a warm-up as long as the training) fails now with the schedule's own error,
    not after the sweep, at the first trial. The error says that its step count is a trial's (the run's epochs
    fitted into each trial's steps), not the run's. ``whole_run`` (``schedule`` is the run's own, the search is
    followed by training): the schedule is first bound to the run's length, so a run too short for it (fewer steps
    than its phases need) fails here too, before the sweep, not after the whole search."""
    run_steps = float(trainer.estimated_stepping_batches)
    if whole_run and math.isfinite(run_steps) and run_steps >= 1:
        bound_schedule(schedule(max_lr=float(peak)), int(run_steps), optimizer_steps_per_epoch(trainer))(0)
    steps, scaled_epoch = trial_shape(trainer, length)
    try:
        bound_schedule(schedule(max_lr=float(peak)), steps, scaled_epoch)(0)
    except ValueError as err:
        raise ValueError(f"{err} [as each max_lr trial of scheduler.max_lr=auto runs it: {steps} optimizer steps "
                         f"for the run's {trainer.estimated_stepping_batches}, the same epochs]") from None


def run_trials(trainer: Any, pl_module: Any, snapshot: Any, lrs: Sequence[float], steps: int,
               schedule: ScheduleFactory, seed: Optional[int], steps_per_epoch: Optional[float],
               val_batches: int = 0) -> List[Dict[str, Any]]:
    """Train ``steps`` optimizer steps of ``schedule(peak)`` for each peak in ``lrs``, each from the state the
    snapshot holds and with the same RNG seed; returns ``[{lr, score, losses, steps}]``, plus ``val_loss``,
    ``val_acc`` and ``val_images`` on the first ``val_batches`` validation batches after each trial that did not
    diverge (when > 0; :func:`choose` ranks on them only where the trials memorised the training set). The state is
    restored after every trial."""
    from callbacks.range_test.engine import (BatchStream, first_loader, optimizer_step_at, seed_rngs,
                                             val_loader, validation_scores)

    trials = []
    with progress_task(trainer, "max_lr trials", len(lrs) * steps) as task:
        for i, peak in enumerate(lrs):
            snapshot.restore_training_state()
            if seed is not None:
                seed_rngs(seed)
            values = bound_schedule(schedule(max_lr=float(peak)), steps, steps_per_epoch)
            stream = BatchStream(trainer, pl_module, first_loader(trainer.train_dataloader), "train")
            task.restart_average(f"{i + 1}/{len(lrs)} @{peak:.3g}")
            losses: List[float] = []
            with closing(stream):
                for k in range(steps):
                    lr, momentum = values(k)
                    if momentum is not None:
                        for opt in trainer.optimizers:
                            for group in opt.param_groups:
                                if momentum_key(group):
                                    set_momentum(group, momentum)
                    mean, _ = optimizer_step_at(trainer, pl_module, stream, float(lr), k)
                    losses.append(mean)
                    task.step(float(lr), mean)
                    if not math.isfinite(mean):
                        break
            task.skip(steps - len(losses))  # a diverged trial: the line still ends full
            trial = {"lr": float(peak), "score": trial_score(losses) if len(losses) == steps else math.inf,
                     "losses": losses, "steps": len(losses)}
            if val_batches and math.isfinite(trial["score"]):
                trial["val_loss"], trial["val_acc"], trial["val_images"] = validation_scores(
                    trainer, pl_module, val_loader(trainer), val_batches)
            trials.append(trial)
    snapshot.restore_training_state()
    return trials


def trials_after_sweep(trainer: Any, pl_module: Any, snapshot: Any, base: float, cap: Optional[float],
                       factors: Sequence[float], length: tuple, schedule: ScheduleFactory,
                       seed: Optional[int], tolerance: float = 0.0, refine: bool = False,
                       val_batches: int = 0, floor: float = 0.0, descend: bool = True,
                       above: Optional[float] = None) -> List[Dict[str, Any]]:
    """The trials as the loss range test runs them after its sweep: ``factors`` x ``base`` (capped at ``cap``),
    each ``trial_length(run steps, *length, images_per_step(trainer))`` steps long (``length``: fraction, min and max
    steps, min images), where the run's steps are the trainer's ``estimated_stepping_batches``; an epoch-based
    schedule is compressed by the same ratio. With ``refine``, one more trial at the :func:`refinement` of the first
    round's choice (by :func:`choose` with ``tolerance``) when a trial learned (:func:`learned`). When the module says
    its chance-level loss and no trial learned (ended :data:`CHANCE_MARGIN` below it) while the lowest candidate's
    loss did fall (to the chance plateau: the range test's minimum can sit on one far above any LR that trains), the
    trials first descend from the lowest candidate in steps of ``LADDER`` (at most ``LADDER_STEPS``, not below
    ``floor``, the sweep's first LR) until one learns; not with ``descend=False`` (the caller has a better fallback:
    the rise point, for an SGD-family optimizer, :func:`untrained_fallback`; none of the 17 SGD-family descents of
    issue 20's benchmark ever learned, RESULTS.md 2026-12-01 19:20). ``val_batches``: see :func:`run_trials`. ``above``:
    the lowest peak the run's schedule can take (:func:`candidates`); the descent stops before it."""
    steps, scaled_epoch = trial_shape(trainer, length)
    per_step = images_per_step(trainer)
    chance = chance_level(pl_module)
    trials = run_trials(trainer, pl_module, snapshot, candidates(base, factors, cap, above), steps, schedule, seed,
                        scaled_epoch, val_batches)
    floor = max(floor, (above or 0.0) * (1 + 1e-9))  # the descent stays above the schedule's lowest peak too
    for _ in range(LADDER_STEPS if descend else 0):  # every candidate fell to chance: the minimum was no guide
        lowest = min(trials, key=lambda t: t["lr"])
        if (chance is None or any(learned(t["losses"], chance=chance) for t in trials)
                or not learned(lowest["losses"]) or lowest["lr"] / LADDER < floor):
            break  # one learned; or the lowest did not even fall (too short to learn anything: lower LRs won't)
        trials += run_trials(trainer, pl_module, snapshot, [lowest["lr"] / LADDER], steps, schedule, seed,
                             scaled_epoch, val_batches)
    if refine and any(learned(t["losses"], chance=chance) for t in trials):  # a winner to refine around
        middle = refinement(trials, choose(trials, tolerance=tolerance, chance=chance)["lr"])
        if middle is not None:
            trials += run_trials(trainer, pl_module, snapshot, [middle], steps, schedule, seed, scaled_epoch,
                                 val_batches)
    return [{**t, "factor": t["lr"] / base, "planned_steps": steps, "images_per_step": per_step,
             "learned": learned(t["losses"], chance=chance), "chance_loss": chance} for t in trials]
