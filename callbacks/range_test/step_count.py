"""Adagrad's steps shrink with the steps taken: an LR measured early is carried to the run's LR peak (issue 20, v18).

torch's Adagrad divides each step by the root of the sum of every squared gradient so far (and by
``1 + (t - 1) x lr_decay``): with gradients of steady size, step ``t`` moves a weight about ``lr / sqrt(t)``
(:func:`shrink`). The range test reads its LRs within its first 100 steps and a trial peaks within its first 100 or
so, while a run of 480 steps peaks at step 216: the same LR takes steps about twice as large in the search as at the
run's peak. So every LR the search measured is carried to the run's peak by ``shrink(measured) / shrink(peak)``
(:func:`carried`): a point of the range test's curve from the sweep step it was read at (:func:`sweep_step`), the
trials' choice from the trial's own LR peak, and where auto blends the two, each before the blend.

Why: on the Adagrad setting of issue 20's benchmark (shapes6_adagrad24, 6 seeds) v17's LR sat at 0.019-0.025,
1.6-4x below the sweep's best (0.04 on five seeds, 0.08 on one): +6.1 points, the largest gap of any setting, and
+5.5 behind the control. Other optimizers keep their step size as steps accumulate (SGD, the Adam family with its
bias correction; RMSprop's average forgets, and on its two settings auto already sat at 0.6-4x the best peak) and are
not carried. Nor is an Adagrad with ``initial_accumulator_value`` > 0, whose steps shrink by an amount that depends on
the gradients' scale.

Only where the search runs its trials (the default): the trials train the run's own schedule, so its peak is known.

Everything but :func:`adagrad_decay` and :func:`carry_setup` (which read the trainer) is pure and tested on numbers
alone.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Dict, Optional, Sequence

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from callbacks.range_test.trial_runs import bound_schedule, trial_shape
from callbacks.range_test.trials import ScheduleFactory
from callbacks.schedules.lr_schedule import optimizer_steps_per_epoch

__all__ = ["adagrad_decay", "carry_setup", "shrink", "peak_step", "sweep_step", "carried", "MAX_EVALUATED"]

#: the schedule is evaluated at most at this many evenly spaced steps to find its peak (a run of 100,000 steps would
#: cost a second in Python; the peak's position is then off by at most 1/4096 of the run: sqrt of that is nothing)
MAX_EVALUATED = 4096


def adagrad_decay(optimizers: Sequence[Any]) -> Optional[float]:
    """The ``lr_decay`` of the first Adagrad parameter group (one with ``lr_decay`` and ``initial_accumulator_value``,
    as torch's Adagrad has) whose accumulator starts at 0; ``None`` when there is none."""
    for opt in optimizers:
        for group in getattr(opt, "param_groups", []):
            if "lr_decay" in group and float(group.get("initial_accumulator_value", 1.0)) == 0.0:
                return float(group["lr_decay"])
    return None


def carry_setup(trainer: Any, schedule: ScheduleFactory, top_lr: float, length: tuple) -> Optional[Dict[str, Any]]:
    """What :func:`carried` needs, read off the trainer the search runs on: ``{lr_decay, run_peak, trial_peak}``, the
    peaks being the optimizer steps where ``schedule(max_lr=top_lr)`` peaks over the run and over one trial (as
    :func:`~callbacks.range_test.trial_runs.run_trials` binds it: ``length`` as there); ``None`` when no optimizer is an
    Adagrad to carry for, or when the run's length is unknown (with a warning)."""
    decay = adagrad_decay(trainer.optimizers)
    if decay is None:
        return None
    run_steps = float(trainer.estimated_stepping_batches)
    if not math.isfinite(run_steps):
        rank_zero_warn("LR range test: the run's length is unknown (a loader without a length and no "
                       "trainer.max_steps), so Adagrad's LR is not carried to the run's LR peak "
                       "(callbacks/range_test/step_count.py); set trainer.max_steps")
        return None
    total, shape = int(run_steps), schedule(max_lr=float(top_lr))
    run_peak = peak_step(bound_schedule(shape, total, optimizer_steps_per_epoch(trainer)), total)
    steps, scaled_epoch = trial_shape(trainer, length)
    trial_peak = peak_step(bound_schedule(shape, steps, scaled_epoch), steps)
    return {"lr_decay": decay, "run_peak": run_peak, "trial_peak": trial_peak}


def shrink(step: int, lr_decay: float = 0.0) -> float:
    """How far Adagrad's step ``step`` (1 = the first) moves a weight, per unit LR, with gradients of steady size:
    ``1 / (sqrt(step) x (1 + (step - 1) x lr_decay))``."""
    if step < 1:
        raise ValueError(f"optimizer steps count from 1, got {step}")
    return 1.0 / (math.sqrt(step) * (1.0 + (step - 1) * lr_decay))


def peak_step(schedule_at: Callable[[int], Any], total: int) -> int:
    """The optimizer step (from 1) where ``schedule_at(step from 0)``, a (lr, momentum) pair as the schedules give,
    first reaches its highest LR over a run of ``total`` steps (at most :data:`MAX_EVALUATED` steps evaluated, evenly
    spaced, the first and last included)."""
    if total < 1:
        raise ValueError(f"a run has at least one optimizer step, got {total}")
    count = min(int(total), MAX_EVALUATED)
    steps = sorted({round(i * (total - 1) / max(count - 1, 1)) for i in range(count)})
    best = max(steps, key=lambda s: (float(schedule_at(s)[0]), -s))
    return best + 1


def sweep_step(lrs: Sequence[float], lr: float) -> int:
    """The range test's step (from 1) at which it reached ``lr``: the first sweep LR at or above it (the last step
    when none is; ``lrs`` rise)."""
    return min(bisect.bisect_left(list(lrs), float(lr) * (1 - 1e-9)) + 1, len(lrs))


def carried(rule: str, suggestions: Dict[str, float], sweep_lrs: Sequence[float], run_peak: int,
            trial_peak: Optional[int], lr_decay: float = 0.0) -> float:
    """The LR that ``rule`` chose, with each measured LR carried from the step it was measured at to the run's peak
    ``run_peak`` (``shrink(measured) / shrink(run_peak)``): ``"trials"`` from the trial's peak ``trial_peak``,
    ``"blend"`` as the geometric mean of the carried trials' choice and the carried update point, any other rule (a
    point of the range test's curve: ``"rise"``, ``"loss_min"``, ...) from the sweep step where it was read."""
    def from_step(lr: float, step: int) -> float:
        return float(lr) * shrink(step, lr_decay) / shrink(run_peak, lr_decay)

    def from_curve(lr: float) -> float:
        return from_step(lr, sweep_step(sweep_lrs, lr))

    if rule in ("trials", "blend") and trial_peak is None:
        raise ValueError(f"rule {rule!r} needs the trials' peak step")
    if rule == "trials":
        return from_step(suggestions["trials"], trial_peak)
    if rule == "blend":
        return math.sqrt(from_step(suggestions["trials"], trial_peak) * from_curve(suggestions["update"]))
    return from_curve(suggestions[rule])
