"""Running the max_lr trials (:mod:`callbacks.range_test.trials` holds what they are and how one is chosen, on
numbers alone): each trial's length and epoch (:func:`trial_shape`), the check that the run's schedule fits them
(:func:`check_fits_trials`), the trials themselves from the range test's snapshot (:func:`run_trials`), and the
rounds the loss range test runs after its sweep (:func:`trials_after_sweep`: candidates, the descent where none
learned, the refinement). Each trial trains from the same weights on the same batches; between trials and at the end
everything is restored exactly as after the range test (:mod:`callbacks.range_test.state`). After each trial that may
have memorised the training set its validation loss is recorded where the data has a validation split of its own
(:func:`own_validation`; it ranks the trials where the best one memorised, v21), never on a test split.
"""
from __future__ import annotations

import inspect
import math
from contextlib import closing
from typing import Any, Callable, Dict, List, Optional, Sequence

from callbacks.range_test.engine import (BatchStream, first_loader, optimizer_step_at, seed_rngs, val_loader,
                                         validation_scores)
from callbacks.range_test.progress import progress_task
from callbacks.range_test.trials import (LADDER, LADDER_STEPS, ScheduleFactory, candidates, chance_level, choose,
                                         learned, near_memorised, refinement, trial_length, trial_score)
from callbacks.schedules.lr_schedule import momentum_key, optimizer_steps_per_epoch, set_momentum

__all__ = ["images_per_step", "own_validation", "bound_schedule", "trial_shape", "check_fits_trials", "run_trials",
           "trials_after_sweep"]


def images_per_step(trainer: Any) -> Optional[int]:
    """Training images behind one optimizer step, over all ranks: the train loader's batch size (its own, its batch
    sampler's, or that of a sampler that yields whole batches, as ``datamodules.batches`` does) x
    ``accumulate_grad_batches`` x world size; ``None`` when none of them says."""
    loader = first_loader(trainer.train_dataloader)
    sizes = [getattr(getattr(loader, part, None) if part else loader, "batch_size", None)
             for part in (None, "batch_sampler", "sampler")]
    batch = next((b for b in sizes if isinstance(b, int) and not isinstance(b, bool) and b >= 1), None)
    if batch is None:
        return None
    return batch * max(int(trainer.accumulate_grad_batches), 1) * max(int(getattr(trainer, "world_size", 1)), 1)


def own_validation(trainer: Any) -> bool:
    """Whether the run validates on a split of its own: it has a validation loader, and its datamodule does not say
    that the loader is the test split (``validates_on_test``: a data set without a validation split, the paper
    recipes' "train on all, test at the end"). The trials are never ranked on a test split."""
    if getattr(trainer.datamodule, "validates_on_test", False):
        return False
    try:
        return val_loader(trainer) is not None
    except ValueError:
        return False


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
               val_batches: int = 0, chance: Optional[float] = None) -> List[Dict[str, Any]]:
    """Train ``steps`` optimizer steps of ``schedule(peak)`` for each peak in ``lrs``, each from the state the
    snapshot holds and with the same RNG seed; returns ``[{lr, score, losses, steps}]``, plus ``val_loss``,
    ``val_acc`` and ``val_images`` on the first ``val_batches`` validation batches (when > 0) after each trial that
    may have memorised the training set (:func:`~callbacks.range_test.trials.near_memorised` of the chance-level
    loss ``chance``): :func:`choose` ranks on them where the best trial memorised it, and no other trial pays for a
    validation pass. The state is restored after every trial."""
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
            if val_batches and near_memorised(trial["score"], chance):
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
                        scaled_epoch, val_batches, chance)
    floor = max(floor, (above or 0.0) * (1 + 1e-9))  # the descent stays above the schedule's lowest peak too
    for _ in range(LADDER_STEPS if descend else 0):  # every candidate fell to chance: the minimum was no guide
        lowest = min(trials, key=lambda t: t["lr"])
        if (chance is None or any(learned(t["losses"], chance=chance) for t in trials)
                or not learned(lowest["losses"]) or lowest["lr"] / LADDER < floor):
            break  # one learned; or the lowest did not even fall (too short to learn anything: lower LRs won't)
        trials += run_trials(trainer, pl_module, snapshot, [lowest["lr"] / LADDER], steps, schedule, seed,
                             scaled_epoch, val_batches, chance)
    if refine and any(learned(t["losses"], chance=chance) for t in trials):  # a winner to refine around
        middle = refinement(trials, choose(trials, tolerance=tolerance, chance=chance)["lr"])
        if middle is not None:
            trials += run_trials(trainer, pl_module, snapshot, [middle], steps, schedule, seed, scaled_epoch,
                                 val_batches, chance)
    return [{**t, "factor": t["lr"] / base, "planned_steps": steps, "images_per_step": per_step,
             "learned": learned(t["losses"], chance=chance), "chance_loss": chance} for t in trials]
