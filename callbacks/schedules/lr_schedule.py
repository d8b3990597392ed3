"""One Lightning callback that drives any pure schedule of :mod:`callbacks.schedules.shapes`.

``LRSchedule(schedule)`` takes ``schedule(step, total_steps, steps_per_epoch=...) -> (lr, momentum | None)``,
usually a ``functools.partial`` made by Hydra from ``conf/scheduler/<name>.yaml`` (``_partial_: true``), and

* counts **optimizer steps** (``trainer.global_step``); the run's length is ``trainer.estimated_stepping_batches``;
* sets, for step ``min(global_step, total_steps - 1)`` at fit start and at every batch start (idempotent, so all
  micro-batches of an accumulated step see the same values), ``group["lr"] = lr * group.get("lr_scale", 1)`` and the
  momentum where the optimizer keeps it: ``momentum`` for SGD, ``betas[0]`` for the Adam family (where Lightning's
  ``LearningRateMonitor`` reads it);
* logs ``train/lr`` and ``train/momentum`` (and per-group ``train/lr/<group>`` when there are several) to every
  logger, once per optimizer step on the steps Lightning logs on (every ``trainer.log_every_n_steps``, the rule
  ``LearningRateMonitor`` follows);
* draws the planned curves to ``schedule.png`` in the log dir and to TensorBoard (``train/schedule``) at fit start;
* saves the schedule's name, shape and total steps in checkpoints and refuses a resume whose schedule differs.

It holds no schedule maths: validation and defaults live in the schedule functions.
"""
from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn

from callbacks.figures import log_figure, save_figure
from callbacks.schedules.shapes import shortfall

Schedule = Callable[..., "tuple[float, float | None]"]
_PROBE_STEPS, _PROBE_STEPS_PER_EPOCH = 10**7, 10**4  # a nominal long run, to check a schedule's shape up front


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return list(value) if isinstance(value, tuple) else value


def schedule_name(schedule: Schedule) -> str:
    func = schedule.func if isinstance(schedule, functools.partial) else schedule
    return getattr(func, "__name__", type(func).__name__)


def schedule_shape(schedule: Schedule) -> dict[str, Any]:
    """The full shape of a (partial) schedule: its config's values over the function's defaults."""
    func = schedule.func if isinstance(schedule, functools.partial) else schedule
    try:
        params = list(inspect.signature(func).parameters.values())[2:]  # after (step, total_steps)
    except (TypeError, ValueError):
        params = []
    shape = {p.name: p.default for p in params if p.default is not p.empty and p.name != "steps_per_epoch"}
    shape.update(schedule.keywords if isinstance(schedule, functools.partial) else {})
    return {k: _plain(v) for k, v in shape.items()}


def optimizer_steps_per_epoch(trainer: pl.Trainer) -> int | None:
    """The run's optimizer steps per epoch (its training batches over ``accumulate_grad_batches``, the last partial
    accumulation stepping too); ``None`` for a loader without a length."""
    batches = trainer.num_training_batches
    return math.ceil(batches / max(int(trainer.accumulate_grad_batches), 1)) if math.isfinite(batches) else None


def momentum_key(group: dict) -> str | None:
    """Where a param group keeps its momentum: ``betas`` (Adam family), ``momentum`` (SGD), or nowhere."""
    return "betas" if "betas" in group else "momentum" if "momentum" in group else None


def get_momentum(group: dict) -> float | None:
    key = momentum_key(group)
    return None if key is None else float(group["betas"][0] if key == "betas" else group["momentum"])


def set_momentum(group: dict, value: float) -> None:
    if momentum_key(group) == "betas":
        group["betas"] = (value, *tuple(group["betas"])[1:])
    else:
        group["momentum"] = value


def logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning's loggers write on the optimizer step about to run (called from ``on_train_batch_start``):
    every ``trainer.log_every_n_steps`` optimizer steps, counting this one, and when the fit is about to stop.

    Lightning's own answer (``LoggerConnector.should_update_logs``, which ``LearningRateMonitor`` reads) sits behind
    the private ``trainer._logger_connector``; this is its rule for the fit loop in public terms: it counts the
    batches that stepped the optimizer, which is ``trainer.global_step`` with one optimizer under automatic
    optimization (what this callback schedules)."""
    if trainer.log_every_n_steps == 0:
        return False
    return (trainer.global_step + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop


def schedule_figure(name: str, lrs: list[list[float]], moms: list[float] | None, labels: list[str] | None,
                    steps_per_epoch: int | None):
    """The planned per-group LR curves (``labels`` when there are several) and the momentum curve, one point per
    optimizer step, with faint lines at epoch boundaries."""
    from matplotlib.figure import Figure

    total = len(lrs[0])
    fig = Figure(figsize=(7, 5.5 if moms is not None else 3.2))
    axes = fig.subplots(2 if moms is not None else 1, 1, sharex=True, squeeze=False)[:, 0]
    for i, curve in enumerate(lrs):
        axes[0].plot(range(total), curve, label=labels[i] if labels else None)
    if labels:
        axes[0].legend(fontsize="small")
    axes[0].set_ylabel("learning rate")
    axes[0].set_title(f"{name}: planned schedule, {total} optimizer steps")
    if moms is not None:
        axes[1].plot(range(total), moms, color="tab:orange")
        axes[1].set_ylabel("momentum / beta1")
    axes[-1].set_xlabel("optimizer step")
    for e in range(1, math.ceil(total / steps_per_epoch)) if steps_per_epoch else ():
        for ax in axes:
            ax.axvline(e * steps_per_epoch, color="0.9", lw=0.5, zorder=0)
    fig.tight_layout()
    return fig


def check_momentum(name: str, optimizers, first_step: bool) -> None:
    """A schedule ``name`` that sets momentum needs optimizers that have one (``momentum`` or ``betas``), and at the
    first step a momentum above 0 (a schedule does not switch it on)."""
    for opt in optimizers:
        for i, group in enumerate(opt.param_groups):
            key = momentum_key(group)
            if key is None:
                raise ValueError(f"scheduler {name!r} sets momentum (cycle_momentum / momentum_values) but "
                                 f"{type(opt).__name__} (param group {i}) has neither `momentum` nor `betas`; turn "
                                 f"the momentum schedule off (scheduler.cycle_momentum=false) or use SGD with momentum "
                                 f"> 0 / an Adam-family optimizer")
            if key == "momentum" and first_step and float(group["momentum"]) == 0.0:
                raise ValueError(f"scheduler {name!r} sets momentum (cycle_momentum / momentum_values) but "
                                 f"{type(opt).__name__} (param group {i}) has momentum=0; a schedule will not switch "
                                 f"momentum on: set optimizer.momentum in (0, 1) or turn the momentum schedule off")


class LRSchedule(Callback):
    """Drive ``schedule`` (see the module docstring); ``plot``: draw the planned curves at fit start."""

    def __init__(self, schedule: Schedule, plot: bool = True) -> None:
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"scheduler: expected a schedule function (a config with _partial_: true), got {schedule!r}")
        self.schedule, self.plot = schedule, bool(plot)
        self.name, self.shape = schedule_name(schedule), schedule_shape(schedule)
        schedule(0, _PROBE_STEPS, steps_per_epoch=_PROBE_STEPS_PER_EPOCH)  # a bad shape fails here, at start-up
        self.total_steps: int | None = None
        self.steps_per_epoch: int | None = None
        self._loaded: dict | None = None
        self._last_logged_step: int | None = None

    @property
    def state_key(self) -> str:
        return "LRSchedule"

    def values(self, step: int) -> tuple[float, float | None]:
        """(lr, momentum or None) at optimizer ``step`` of this run (after fit start)."""
        assert self.total_steps is not None
        return self.schedule(min(step, self.total_steps - 1), self.total_steps, steps_per_epoch=self.steps_per_epoch)

    # -- checks at fit start --------------------------------------------------------------------------------------
    def _check_resume(self, trainer: pl.Trainer, with_length: bool = True) -> None:
        saved = self._loaded
        if saved is None:
            if trainer.ckpt_path is not None:
                raise ValueError(f"LRSchedule: resuming from {trainer.ckpt_path}, a checkpoint that has no LR schedule "
                                 f"state; refusing to guess where the schedule stands")
            return
        diffs = []
        if saved.get("name") != self.name:
            diffs.append(f"schedule: checkpoint {saved.get('name')!r}, config {self.name!r}")
        else:
            old = saved.get("params", {})
            diffs += [f"scheduler.{k}: checkpoint {old.get(k, '<missing>')!r}, config {self.shape.get(k, '<missing>')!r}"
                      for k in sorted(set(old) | set(self.shape)) if old.get(k, "<missing>") != self.shape.get(k, "<missing>")]
        if with_length and saved.get("total_steps") != self.total_steps:
            diffs.append(f"total_steps: checkpoint {saved.get('total_steps')!r}, config {self.total_steps!r} (from "
                         f"max_epochs / max_steps / batch size / accumulate_grad_batches / limit_train_batches)")
        if diffs:
            raise ValueError("LRSchedule: refusing to resume: the checkpoint's LR schedule differs from the config "
                             "(no silent stretching): " + "; ".join(diffs))

    def sets_momentum(self) -> bool:
        """Whether the schedule sets momentum (cycle_momentum, momentum_values), read off a nominal long run."""
        return self.schedule(0, _PROBE_STEPS, steps_per_epoch=_PROBE_STEPS_PER_EPOCH)[1] is not None

    def _check_optimizer(self, trainer: pl.Trainer) -> None:
        if self.values(0)[1] is not None:
            check_momentum(self.name, trainer.optimizers, first_step=trainer.global_step == 0)

    # -- applying and logging ---------------------------------------------------------------------------------------
    def _apply(self, trainer: pl.Trainer, log_values: bool) -> None:
        lr, momentum = self.values(trainer.global_step)
        groups = [g for opt in trainer.optimizers for g in opt.param_groups]
        for group in groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
            if momentum is not None:
                set_momentum(group, momentum)
        # on the steps Lightning logs on (every trainer.log_every_n_steps, as LearningRateMonitor), once per step
        if log_values and self._last_logged_step != trainer.global_step and logs_this_step(trainer):
            self._last_logged_step = trainer.global_step
            for logger in trainer.loggers:
                logger.log_metrics(self._metrics(lr, momentum, groups), step=trainer.global_step)

    @staticmethod
    def _metrics(lr: float, momentum: float | None, groups: list[dict]) -> dict[str, float]:
        metrics = {"train/lr": float(lr)}
        if momentum is not None:
            metrics["train/momentum"] = float(momentum)
        if len(groups) > 1:
            for i, group in enumerate(groups):
                suffix = f"/{group.get('name', f'pg{i}')}"
                metrics[f"train/lr{suffix}"] = float(group["lr"])
                if get_momentum(group) is not None:
                    metrics[f"train/momentum{suffix}"] = get_momentum(group)
        return metrics

    def planned_curves(self, lr_scales=(1.0,)) -> tuple[list[list[float]], list[float] | None]:
        """Per-group LR curves and the momentum curve (None: untouched) for every step of the run."""
        values = [self.values(s) for s in range(self.total_steps)]
        moms = [v[1] for v in values] if values and values[0][1] is not None else None
        return [[v[0] * scale for v in values] for scale in lr_scales], moms

    def _plot(self, trainer: pl.Trainer) -> None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # a collective call: every rank
        if not trainer.is_global_zero:
            return
        groups = [g for opt in trainer.optimizers for g in opt.param_groups]
        scales = [g.get("lr_scale", 1.0) for g in groups]
        lrs, moms = self.planned_curves(scales)
        if moms is None and groups and get_momentum(groups[0]) is not None:
            moms = [get_momentum(groups[0])] * self.total_steps  # constant momentum from the optimizer
        labels = ([f"{g.get('name', f'pg{i}')} (lr_scale {scales[i]:g})" for i, g in enumerate(groups)]
                  if len(lrs) > 1 else None)
        fig = schedule_figure(self.name, lrs, moms, labels, self.steps_per_epoch)
        if log_dir is not None:
            save_figure(fig, os.path.join(log_dir, "schedule.png"))
        log_figure(trainer.loggers, "train/schedule", fig, step=trainer.global_step)

    # -- hooks -----------------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the schedule's shape, before Lightning decides whether anything is left to train (so a finished
        # checkpoint resumed with another schedule is refused too); the run's length is known at train start
        self._check_resume(trainer, with_length=False)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(f"LRSchedule: the run has {total} optimizer steps; set trainer.max_epochs >= 1 with a "
                             f"sized train dataloader, or trainer.max_steps >= 1")
        self.total_steps = int(total)
        self.steps_per_epoch = optimizer_steps_per_epoch(trainer)
        self.values(0)  # checks that need the run's length (phases, warm-up shorter than the run, ...)
        unreached = shortfall(self.name, self.shape, self.total_steps, self.steps_per_epoch)
        if unreached and trainer.global_step == 0:  # said once, at the run's first start
            rank_zero_warn(unreached)
        self._check_resume(trainer)
        self._check_optimizer(trainer)
        self._apply(trainer, log_values=False)  # logged by the first on_train_batch_start
        if self.plot:
            self._plot(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._apply(trainer, log_values=True)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.shape, "total_steps": self.total_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = dict(state_dict)  # compared with the config in on_train_start, once total_steps is known
