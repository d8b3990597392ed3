"""Smith's LR range test on the training loss, as a Lightning callback that leaves nothing behind.

Raise the LR after every optimizer step (exponentially or linearly from ``min_lr`` to ``max_lr``) until the
running-average loss blows up, then suggest a learning rate (see :mod:`callbacks.range_test.suggestions`).
L. N. Smith, "A disciplined approach to neural network hyper-parameters: Part 1" (2018), sec. 4.1;
"Cyclical Learning Rates for Training Neural Networks" (2015), sec. 3.3. Usually run through
:func:`callbacks.range_test.finder.find_lr`; the machinery (restore, private batches, one step) is in
:mod:`callbacks.range_test.engine`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn

from callbacks.range_test.base import RangeTestCallback
from callbacks.range_test.choice import chosen_lr, over_repeats
from callbacks.range_test.forecast import search_plan
from callbacks.range_test.progress import progress_task
from callbacks.range_test.result import RangeTestResult
from callbacks.range_test.smoothing import default_bandwidth, divergence_index, running_average, sweep_diverged
from callbacks.range_test.step_count import carry_setup
from callbacks.range_test.suggestions import SUGGESTIONS, compute_suggestions, rise_point
from callbacks.range_test.engine import BatchStream, first_loader, optimizer_step_at, seed_rngs, sweep_lrs
from callbacks.range_test.trial_runs import check_fits_trials, own_validation, trials_after_sweep
from callbacks.range_test.trials import (RISE_SHARE, ScheduleFactory, adam_family, check_trial_settings,
                                         default_schedule)
from callbacks.range_test.update_size import UPDATE_SHARE, StepSize, check_update_share

__all__ = ["LRRangeTest", "loss_rise", "sweep_status", "suggestion_spread", "one_sweep"]

#: Minimum number of sweep points before the stop; fewer means the loss exploded at once (min_lr too high).
_MIN_POINTS = 3


def _rise(curve: Sequence[float]) -> Optional[float]:
    y = np.asarray(curve, dtype=np.float64)
    y = y[: int(np.argmax(~np.isfinite(y)))] if not np.all(np.isfinite(y)) else y
    if y.size == 0:
        return None
    i = int(np.argmin(y))
    return float(np.max(y[i:]) / y[i]) if y[i] > 0 else None


def loss_rise(smoothed: Sequence[float], running_avg: Sequence[float]) -> Optional[float]:
    """How far the loss rose after its minimum: the larger of ``max(curve after its minimum) / minimum`` over the
    zero-lag smoothed loss and the running average (finite prefix). ``None`` if a minimum is <= 0."""
    rises = [r for r in (_rise(smoothed), _rise(running_avg)) if r is not None]
    return max(rises) if rises else None


def sweep_status(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                 running_avg: Sequence[float], stop: Optional[int], diverge_factor: Optional[float]) -> str:
    """One line on how the sweep ended and how far the loss rose over its minimum; never "no divergence" when
    the loss more than doubled."""
    rise = loss_rise(smoothed, running_avg)
    rise_txt = "" if rise is None else f"{rise:.1f}x"
    if stop is not None:
        if not math.isfinite(losses[stop]):
            return f"stopped at step {stop} (lr {lrs[stop]:.3g}): the loss became {losses[stop]}"
        ra = np.asarray(running_avg[: stop + 1], dtype=np.float64)
        ratio = ra[stop] / ra[:stop].min()
        return (f"stopped at step {stop} (lr {lrs[stop]:.3g}): running-average loss rose to {ratio:.1f}x its "
                f"minimum (diverge_factor {diverge_factor:g})")
    n = len(losses)
    if sweep_diverged(stop, rise):
        return f"ran all {n} steps without a stop, but the loss rose to {rise_txt} its minimum"
    if int(np.nanargmin(np.asarray(smoothed, dtype=np.float64))) >= n - 2:
        return (f"no divergence in {n} steps: the loss was still falling at max_lr {lrs[-1]:.3g}; "
                "raise range_test.max_lr")
    if rise is None:
        return f"ran all {n} steps; the loss has no positive minimum to compare with"
    return f"no divergence in {n} steps: the loss rose to only {rise_txt} its minimum; raise range_test.max_lr"


def suggestion_spread(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Each suggestion over the repeats of the sweep: its ``values``, their ``geomean`` (what is reported) and
    ``std``."""
    spread: Dict[str, Dict[str, Any]] = {}
    for name in SUGGESTIONS:
        vals = np.array([run["suggestions"][name] for run in runs], dtype=np.float64)
        spread[name] = {"values": vals.tolist(), "geomean": float(np.exp(np.mean(np.log(vals)))),
                        "std": float(vals.std(ddof=1)) if vals.size > 1 else 0.0}
    return spread


class LRRangeTest(RangeTestCallback):
    """Smith's LR range test on the training loss (one LR value per optimizer step).

    Args:
        min_lr, max_lr: sweep range (``min_lr < max_lr``; ``min_lr > 0`` in exp mode).
        num_steps: optimizer steps in the sweep (>= 10); the sweep may stop earlier on divergence.
        mode: ``"exp"`` (log-spaced LRs, the usual choice) or ``"linear"``.
        diverge_factor: stop once the bias-corrected running average of the loss exceeds this multiple of its
            best value (``None``: only a non-finite loss stops the sweep).
        smooth_beta: beta of that running average (0.98, as in Smith's/fastai's finder).
        suggestion: the rule that becomes ``result.lr``: ``"min_div10"``, ``"steepest"``, ``"valley"`` or
            ``"loss_min"`` (see :mod:`callbacks.range_test.suggestions`).
        repeats: sweeps with seeds ``seed, seed+1, ...`` (model restored in between); the answer is the geometric
            mean over repeats and the spread is reported.
        seed: seed of the sweep's RNGs (data order, augmentation, dropout); ``None`` continues the current
            streams. Training's own RNG state is restored afterwards either way.
        bandwidth: width (decades of LR) of the zero-lag smoother; ``None`` = default.
        trial_factors: after the sweep, train a short trial at each ``factor x`` the rule's LR (capped at the LR
            where the sweep stopped) and keep the one with the lowest training loss at its end
            (:mod:`callbacks.range_test.trials`); ``None`` or empty: the rule's LR alone.
        trial_fraction, trial_min_steps, trial_max_steps: each trial's length in optimizer steps, as a fraction
            of the training run's (``trainer.estimated_stepping_batches``), within [min, max].
        trial_min_images: each trial also runs enough steps to see this many training images (over all ranks and
            accumulated batches), up to ``trial_max_steps``; 0: no such floor.
        trial_val_batches: after each trial, record its validation loss and accuracy on this many validation
            batches (``val_loss``, ``val_acc`` in each trial), where the data has a validation split of its own
            (:func:`~callbacks.range_test.trial_runs.own_validation`; never the test split); they rank the trials only
            where the trials memorised the training set (v21, :func:`~callbacks.range_test.trials.choose`); 0: none.
        trial_tolerance: a larger candidate whose score is within this fraction of the best one's is kept (at most
            ``trials.STRONG_TOLERANCE`` when the best trial ended ``trials.WEAK_PROGRESS`` or more below chance).
        trial_refine: one more trial between the winner and the next larger candidate, chosen by the same rule.
        trial_schedule: ``trial_schedule(max_lr=peak)`` -> the run's schedule function at that peak (train.py
            passes the configured scheduler; the run itself must fit it, checked before the sweep); ``None``:
            one-cycle with ``OneCycleLR``'s defaults.
        trial_floor: the lowest peak that schedule can take (a cyclic schedule's fixed ``base_lr``; train.py passes
            it): candidates at or below it are not tried; ``None``: no such floor.
        update_share: where a trial learned, the found LR is the geometric mean of the trials' choice and the update
            point, the first LR of the sweep whose step moved the weights by more than this share of their norm
            (median over weight tensors; :mod:`callbacks.range_test.update_size`); ``None``: the trials' choice alone.

    After :meth:`run` (or ``on_train_start``) ``self.result`` is the :class:`~callbacks.range_test.finder.RangeTestResult`.
    """

    def __init__(self, min_lr: float = 1e-5, max_lr: float = 10.0, num_steps: int = 200, mode: str = "exp",
                 diverge_factor: Optional[float] = 4.0, smooth_beta: float = 0.98, suggestion: str = "loss_min",
                 repeats: int = 1, seed: Optional[int] = 0, bandwidth: Optional[float] = None,
                 trial_factors: Optional[Sequence[float]] = (0.3, 1.0, 3.0, 10.0), trial_fraction: float = 0.05,
                 trial_min_steps: int = 50, trial_max_steps: int = 200, trial_tolerance: float = 0.05,
                 trial_refine: bool = True, trial_min_images: int = 3200, trial_val_batches: int = 8,
                 trial_schedule: Optional[ScheduleFactory] = None, trial_floor: Optional[float] = None,
                 update_share: Optional[float] = UPDATE_SHARE) -> None:
        if num_steps is None:
            raise ValueError("range_test.num_steps must be an integer >= 10, got None")
        super().__init__(min_lr, max_lr, num_steps, mode, diverge_factor, smooth_beta, seed)
        if suggestion not in SUGGESTIONS:
            raise ValueError(f"range_test.suggestion must be one of {list(SUGGESTIONS)}, got {suggestion!r}")
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise ValueError(f"range_test.repeats must be an integer >= 1, got {repeats!r}")
        if bandwidth is not None and not (isinstance(bandwidth, (int, float)) and bandwidth > 0):
            raise ValueError(f"range_test.bandwidth must be > 0 (or null), got {bandwidth!r}")
        self.suggestion, self.repeats, self.bandwidth = suggestion, repeats, bandwidth
        self.trial_factors = check_trial_settings(trial_factors, trial_fraction, trial_min_steps, trial_max_steps,
                                                  trial_tolerance, trial_refine, trial_min_images,
                                                  trial_val_batches)
        self.trial_fraction, self.trial_min_steps, self.trial_max_steps = trial_fraction, trial_min_steps, trial_max_steps
        self.trial_min_images, self.trial_val_batches = trial_min_images, trial_val_batches
        self.trial_tolerance, self.trial_refine = float(trial_tolerance), trial_refine
        self.trial_schedule = trial_schedule or default_schedule
        if trial_floor is not None and not (isinstance(trial_floor, (int, float)) and trial_floor >= 0):
            raise ValueError(f"trial_floor must be a number >= 0 (or None), got {trial_floor!r}")
        self.trial_floor = None if trial_floor is None else float(trial_floor)
        self.update_share = check_update_share(update_share)

    # -- sweep ----------------------------------------------------------------------------------------------
    def _sweep(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", snapshot: Any) -> Dict[str, Any]:
        lrs = sweep_lrs(self.min_lr, self.max_lr, self.num_steps, self.mode)
        accum = max(int(trainer.accumulate_grad_batches), 1)
        length = (self.trial_fraction, self.trial_min_steps, self.trial_max_steps, self.trial_min_images)
        if self.trial_factors:  # a schedule that cannot fit the trials (or the run) fails before the sweep
            check_fits_trials(trainer, self.trial_schedule, self.max_lr, length,
                              whole_run=self.trial_schedule is not default_schedule)
        rank_zero_info(search_plan(trainer, self.num_steps, self.repeats, self.trial_factors, length,
                                   self.trial_refine).line())  # before it starts: a search too costly can be stopped
        runs = []
        for r in range(self.repeats):
            if r > 0:
                snapshot.restore_training_state()
            if self.seed is not None:
                seed_rngs(self.seed + r)
            stream = BatchStream(trainer, pl_module, first_loader(trainer.train_dataloader), "train")
            try:
                if r == 0:
                    stream.warn_if_short(self.num_steps * accum)
                runs.append(self._one_sweep(trainer, pl_module, stream, lrs))
            finally:
                stream.close()
        raw = {"runs": runs}
        if self.trial_factors:
            base, rise = self._curve_points(runs)
            adaptive = adam_family(trainer.optimizers)  # where no trial learned: the rise point (SGD family), or not
            stop = runs[0]["stop_index"]  # no blow-up: nothing above the sweep's last LR was ever tried
            raw["trials"] = trials_after_sweep(
                trainer, pl_module, snapshot, base, cap=runs[0]["lrs"][-1 if stop is None else stop],
                factors=self.trial_factors, length=length, schedule=self.trial_schedule, seed=self.seed,
                tolerance=self.trial_tolerance, refine=self.trial_refine,
                val_batches=self.trial_val_batches if self.trial_val_batches and own_validation(trainer) else 0,
                floor=float(runs[0]["lrs"][0]), descend=adaptive or rise is None, above=self.trial_floor)
            raw["adaptive"], raw["rise"] = adaptive, rise
            raw["carry"] = carry_setup(trainer, self.trial_schedule, self.max_lr, length)  # Adagrad only (v18)
        return raw

    def _curve_points(self, runs: List[Dict[str, Any]]) -> tuple:
        """The rule's LR and the rise point (:func:`rise_point`; ``None`` when a repeat's loss never rose that far),
        each the geometric mean over repeats, read off the smoothed curves that :meth:`_analyse` reports."""
        runs = [self._smoothed(r) for r in runs]
        base = over_repeats([r["suggestions"][self.suggestion] for r in runs])
        return base, over_repeats([rise_point(r["lrs"], r["smoothed"], RISE_SHARE) for r in runs])

    def _smoothed(self, run: Dict[str, Any]) -> Dict[str, Any]:
        """``run`` (one repeat of the sweep) with its bandwidth, smoothed curve and suggestions, computed once."""
        if "smoothed" not in run:
            run["bandwidth"] = self.bandwidth or default_bandwidth(np.log10(run["lrs"]))
            sugg, smoothed = compute_suggestions(run["lrs"], run["losses"], run["bandwidth"])
            run["suggestions"], run["smoothed"] = sugg, [float(x) for x in smoothed]
        return run

    def _one_sweep(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stream: BatchStream,
                   lrs: np.ndarray) -> Dict[str, Any]:
        return one_sweep(trainer, pl_module, stream, lrs, self.smooth_beta, self.diverge_factor)

    # -- analysis -------------------------------------------------------------------------------------------
    def _analyse(self, raw: Dict[str, Any], elapsed_s: float) -> RangeTestResult:
        runs = raw["runs"]
        for r, run in enumerate(runs):
            run["seed"] = None if self.seed is None else self.seed + r
            self._smoothed(run)
            run["running_avg"] = [float(x) for x in running_average(run["losses"], self.smooth_beta)]
            run["loss_rise"] = loss_rise(run["smoothed"], run["running_avg"])
            run["status"] = sweep_status(run["lrs"], run["losses"], run["smoothed"], run["running_avg"],
                                         run["stop_index"], self.diverge_factor)
        if runs[0]["status"].startswith("no divergence"):
            rank_zero_warn(f"LR range test: {runs[0]['status']}")
        if len(runs) > 1 and all(r["losses"] == runs[0]["losses"] for r in runs):
            rank_zero_warn("LR range test: all repeats gave identical loss curves; the data order and augmentation "
                           "do not depend on range_test.seed, so repeats add nothing here (set repeats: 1)")
        spread = suggestion_spread(runs)
        suggestions = {name: spread[name]["geomean"] for name in SUGGESTIONS}
        first = runs[0]
        settings = {k: getattr(self, k) for k in ("min_lr", "max_lr", "num_steps", "mode", "diverge_factor",
                                                  "smooth_beta", "suggestion", "repeats", "seed", "bandwidth",
                                                  "trial_factors", "trial_fraction", "trial_min_steps",
                                                  "trial_max_steps", "trial_min_images", "trial_tolerance",
                                                  "trial_refine", "trial_val_batches", "trial_floor", "update_share")}
        rule, lr, suggestions, carry = chosen_lr(raw, suggestions, self.suggestion, self.trial_tolerance,
                                                 self.update_share)
        trials = raw.get("trials", [])  # with each trial's per-step losses: the paired test can be replayed
        return RangeTestResult(
            kind="loss", lrs=first["lrs"], losses=first["losses"], smoothed=first["smoothed"],
            suggestions=suggestions, rule=rule, lr=lr, base_lr=None,
            status=first["status"], elapsed_s=elapsed_s, stop_index=first["stop_index"],
            loss_rise=first["loss_rise"], settings=settings, repeats=runs, spread=spread, trials=trials,
            search_steps=sum(len(r["losses"]) for r in runs) + sum(t["steps"] for t in trials), carry=carry)


def one_sweep(trainer: "pl.Trainer", pl_module: "pl.LightningModule", stream: BatchStream, lrs: np.ndarray,
              smooth_beta: float, diverge_factor: Optional[float]) -> Dict[str, Any]:
    """One sweep: an optimizer step at each LR of ``lrs`` until the loss blows up (``diverge_factor`` x the best of
    its running average with ``smooth_beta``; ``None``: a non-finite loss); the raw record :meth:`LRRangeTest._analyse`
    reads."""
    losses: List[float] = []
    local: List[float] = []
    updates: List[float] = []  # how far each step moved the weights (:mod:`callbacks.range_test.update_size`)
    step_size = StepSize(pl_module)
    stop: Optional[int] = None
    with progress_task(trainer, "LR range test", len(lrs), smooth_beta) as task:
        for k, lr in enumerate(lrs):
            step_size.before()
            mean, mine = optimizer_step_at(trainer, pl_module, stream, float(lr), k)
            updates.append(step_size.after())
            losses.append(mean)
            local.append(mine)
            task.step(float(lr), mean)
            if k == 0 and not math.isfinite(mean):
                raise RuntimeError(f"LR range test: the loss is {mean} at the very first step (lr={lr:.3g}); "
                                   "lower range_test.min_lr (or check the model/data)")
            if diverge_factor is not None:
                stop = divergence_index(losses, smooth_beta, diverge_factor)
            elif not math.isfinite(mean):
                stop = k
            if stop is not None:
                task.end(f"stopped at {k + 1}/{len(lrs)}: loss blew up at lr {lrs[stop]:.3g}")
                break
    if stop is not None and stop < _MIN_POINTS:
        raise RuntimeError(
            f"LR range test: the loss exploded within the first {stop + 1} steps "
            f"(lr={lrs[stop]:.3g}, losses={[round(x, 4) for x in losses]}); lower range_test.min_lr")
    return {"lrs": [float(x) for x in lrs[: len(losses)]], "losses": losses, "local_losses": local,
            "updates": updates, "stop_index": stop}
