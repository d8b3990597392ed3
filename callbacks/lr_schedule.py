"""Learning-rate / momentum schedules as Lightning callbacks.

The maths lives in :mod:`callbacks.schedules`; this module converts units,
validates the configuration, applies the values to the optimizer and makes them
visible. Every callback here

* counts **optimizer steps** (``trainer.global_step``); the length of the run is
  ``trainer.estimated_stepping_batches``, never a config value;
* sets ``group["lr"] = value * group.get("lr_scale", 1.0)`` (and the momentum:
  ``group["momentum"]`` for SGD-like optimizers, ``group["betas"][0]`` for the
  Adam family) for step ``trainer.global_step`` in ``on_train_start`` and in
  every ``on_train_batch_start``. That is idempotent, so with gradient
  accumulation all micro-batches of one optimizer step see the same values, and
  the step index is clamped to the last step, so the schedule never runs past
  its end (the last optimizer step uses the final value);
* logs ``train/lr`` and ``train/momentum`` (the schedule's values) and, when
  there are several parameter groups, each group's own values (its ``lr_scale``
  applied) as ``train/lr/<group name or pg{i}>``, once per optimizer step, straight to every
  trainer logger with ``step=global_step``; Lightning's
  ``LearningRateMonitor(logging_interval="step", log_momentum=True)``, placed
  after the schedule callback, reads the same values from the optimizer;
* draws the planned LR and momentum curves of the whole run to
  ``schedule.png`` in ``trainer.log_dir`` at fit start (and to TensorBoard as
  the figure ``train/schedule``);
* saves its name, shape parameters and total steps in the checkpoint and
  refuses (``ValueError`` saying what differs) to resume a run whose schedule
  or length differs.

Positions given in ``epoch`` or ``fraction`` units (knots, warm-up length,
milestones) are mapped linearly onto the optimizer steps so that 0 is step 0 and
the end of training (``1`` for fractions, the run's length in epochs for epochs)
is the last optimizer step ``total_steps - 1``: ``step = x * (total_steps - 1) /
length``. An epoch boundary ``e`` therefore falls within one step of ``e *
steps_per_epoch`` (the first step with ``step >= position`` is exactly ``e *
steps_per_epoch``), and the final knot's value is the last step's value. Unit
``step`` uses optimizer-step indices as they are.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from callbacks import schedules

log = logging.getLogger(__name__)

_UNITS = ("epoch", "fraction", "step")


# --------------------------------------------------------------------------- validation helpers
def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check(cond: bool, who: str, key: str, allowed: str, value: Any) -> None:
    if not cond:
        raise ValueError(f"{who}: `{key}` must be {allowed}, got {value!r}")


def _check_max_lr(who: str, value: Any, allow_auto: bool = True) -> None:
    if allow_auto and value == "auto":
        return
    _check(_is_number(value) and value > 0, who, "max_lr", "a number > 0" + (" or 'auto'" if allow_auto else ""), value)


def _check_momentum(who: str, key: str, value: Any) -> None:
    _check(_is_number(value) and 0 <= value < 1, who, key, "a number in [0, 1)", value)


def _floats(who: str, key: str, seq: Any, allow_none: bool = False) -> list[float] | None:
    if seq is None and allow_none:
        return None
    try:
        out = [float(v) for v in seq]
    except (TypeError, ValueError):
        raise ValueError(f"{who}: `{key}` must be a list of numbers, got {seq!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{who}: `{key}` must contain finite numbers, got {seq!r}")
    return out


def _momentum_key(group: dict) -> str | None:
    """Where the momentum of a param group lives: ``betas`` (Adam family) or ``momentum`` (SGD)."""
    if "betas" in group:
        return "betas"
    if "momentum" in group:
        return "momentum"
    return None


def _get_momentum(group: dict) -> float | None:
    key = _momentum_key(group)
    if key == "betas":
        return float(group["betas"][0])
    if key == "momentum":
        return float(group["momentum"])
    return None


# --------------------------------------------------------------------------- base class
class ScheduleCallback(Callback):
    """Shared machinery of the schedule callbacks (see the module docstring).

    Subclasses implement :meth:`shape_params`, :meth:`_validate_for_run` (checks
    that need the trainer, e.g. lengths in epochs) and :meth:`schedule_values`.
    """

    #: Constructor key that names the momentum schedule in error messages.
    momentum_key_name = "cycle_momentum"

    def __init__(self, plot: bool = True) -> None:
        super().__init__()
        self.plot = bool(plot)
        self.total_steps: int | None = None
        self.steps_per_epoch: int | None = None
        self._loaded_state: dict | None = None
        self._last_logged_step: int | None = None

    # ---- to implement
    def shape_params(self) -> dict[str, Any]:
        """The configuration that defines the curve (saved in checkpoints and compared on resume): every
        constructor argument but ``plot``, as the (validated) attribute of the same name."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n not in ("self", "plot")]
        values = {n: getattr(self, n) for n in names}
        return {n: list(v) if isinstance(v, (list, tuple)) else v for n, v in values.items()}

    @property
    def schedules_momentum(self) -> bool:
        return False

    def _validate_for_run(self, trainer: pl.Trainer) -> None:
        """Checks that need the run's length; called in ``on_train_start`` after ``total_steps`` is known."""

    def schedule_values(self, step: int) -> tuple[float, float | None]:
        """(lr, momentum or None) for optimizer step ``step`` (before ``lr_scale``)."""
        raise NotImplementedError

    # ---- common
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def state_key(self) -> str:
        # One key for every schedule callback: a checkpoint written with another schedule is found and refused.
        return "LRSchedule"

    def _to_steps(self, x: float, unit: str) -> float:
        """Map a position in ``unit`` onto optimizer steps (see the module docstring)."""
        assert self.total_steps is not None
        if unit == "step":
            return float(x)
        last = self.total_steps - 1
        if unit == "fraction":
            return x * last
        assert self.steps_per_epoch is not None
        return x * last * self.steps_per_epoch / self.total_steps

    def _run_length(self, unit: str) -> float:
        """Length of the run in ``unit``."""
        assert self.total_steps is not None
        if unit == "step":
            return float(self.total_steps)
        if unit == "fraction":
            return 1.0
        assert self.steps_per_epoch is not None
        return self.total_steps / self.steps_per_epoch

    def _resolve_auto(self, trainer: pl.Trainer) -> None:
        """Handle ``max_lr='auto'``: a number must have been set by the range test (or the checkpoint)."""
        if not getattr(self, "_max_lr_auto", False):
            return
        saved = self._loaded_state
        if saved is not None and saved.get("max_lr_auto") and saved.get("name") == self.name:
            # A resumed auto run keeps the max_lr found when it started, whatever a new range test says.
            saved_lr = saved["params"]["max_lr"]
            if self.max_lr != saved_lr:
                log.info("%s: resuming with max_lr=%s from the checkpoint (max_lr='auto')", self.name, saved_lr)
            self.max_lr = saved_lr
        if self.max_lr == "auto":
            raise ValueError(
                f"{self.name}: `max_lr` is 'auto' but nothing set it: the LR range-test callback must come before "
                f"the schedule callback in trainer.callbacks (or give max_lr as a number > 0)"
            )
        _check_max_lr(self.name, self.max_lr, allow_auto=False)

    def _check_resume(self, trainer: pl.Trainer) -> None:
        saved = self._loaded_state
        if saved is None:
            if trainer.global_step > 0:
                raise ValueError(
                    f"{self.name}: resuming at global_step={trainer.global_step} from a checkpoint that has no LR "
                    f"schedule state (it was not written with a schedule callback); refusing to guess where the "
                    f"schedule stands"
                )
            return
        diffs = []
        if saved.get("name") != self.name:
            diffs.append(f"schedule: checkpoint {saved.get('name')!r}, config {self.name!r}")
        else:
            old, new = saved.get("params", {}), self.shape_params()
            for key in sorted(set(old) | set(new)):
                was, now = old.get(key, "<missing>"), new.get(key, "<missing>")
                if was != now:
                    diffs.append(f"{key}: checkpoint {was!r}, config {now!r}")
        if saved.get("total_steps") != self.total_steps:
            diffs.append(
                f"total_steps: checkpoint {saved.get('total_steps')!r}, config {self.total_steps!r} "
                f"(from trainer.estimated_stepping_batches: max_epochs / max_steps / batch size / "
                f"accumulate_grad_batches / limit_train_batches)"
            )
        if diffs:
            raise ValueError(
                f"{self.name}: refusing to resume: the checkpoint's LR schedule differs from the current config "
                f"(no silent stretching): " + "; ".join(diffs)
            )

    def _check_optimizer(self, trainer: pl.Trainer) -> None:
        if not self.schedules_momentum:
            return
        for opt in trainer.optimizers:
            for i, group in enumerate(opt.param_groups):
                key = _momentum_key(group)
                if key is None:
                    raise ValueError(
                        f"{self.name}: `{self.momentum_key_name}` asks for a momentum schedule but "
                        f"{type(opt).__name__} (param group {i}) has neither `momentum` nor `betas`; "
                        f"set {self.momentum_key_name} off or use SGD with momentum > 0 / an Adam-family optimizer"
                    )
                if key == "momentum" and trainer.global_step == 0 and float(group["momentum"]) == 0.0:
                    raise ValueError(
                        f"{self.name}: `{self.momentum_key_name}` asks for a momentum schedule but "
                        f"{type(opt).__name__} (param group {i}) was configured with momentum=0; a schedule will not "
                        f"switch momentum on: configure the optimizer's momentum in (0, 1) or set "
                        f"{self.momentum_key_name} off"
                    )

    def _apply(self, trainer: pl.Trainer, log_values: bool) -> None:
        assert self.total_steps is not None
        step = min(trainer.global_step, self.total_steps - 1)
        lr, momentum = self.schedule_values(step)
        metrics: dict[str, float] = {"train/lr": float(lr)}
        if momentum is not None:
            metrics["train/momentum"] = float(momentum)
        groups = [g for opt in trainer.optimizers for g in opt.param_groups]
        for i, group in enumerate(groups):
            group["lr"] = lr * group.get("lr_scale", 1.0)
            if momentum is not None:
                if _momentum_key(group) == "betas":
                    group["betas"] = (momentum, *tuple(group["betas"])[1:])
                else:
                    group["momentum"] = momentum
            suffix = f"/{group.get('name', f'pg{i}')}" if len(groups) > 1 else ""
            metrics[f"train/lr{suffix}"] = float(group["lr"])
            m = _get_momentum(group)
            if m is not None:
                metrics[f"train/momentum{suffix}"] = m
        if log_values and self._last_logged_step != trainer.global_step:
            self._last_logged_step = trainer.global_step
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def planned_curves(self, lr_scales: Sequence[float] = (1.0,)) -> tuple[list[list[float]], list[float] | None]:
        """Per-group LR curves and the momentum curve for every step of the run (after ``on_train_start``)."""
        assert self.total_steps is not None
        values = [self.schedule_values(s) for s in range(self.total_steps)]
        lrs = [[v[0] * scale for v in values] for scale in lr_scales]
        moms = [v[1] for v in values] if values and values[0][1] is not None else None
        return lrs, moms

    def _plot(self, trainer: pl.Trainer) -> None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # collective call: every rank
        if not trainer.is_global_zero:
            return
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from pytorch_lightning.loggers import TensorBoardLogger

        groups = [g for opt in trainer.optimizers for g in opt.param_groups]
        scales = [g.get("lr_scale", 1.0) for g in groups]
        lrs, moms = self.planned_curves(scales)
        if moms is None and groups and _get_momentum(groups[0]) is not None:
            moms = [_get_momentum(groups[0])] * self.total_steps  # constant momentum from the optimizer
        fig = Figure(figsize=(7, 5.5 if moms is not None else 3.2))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2 if moms is not None else 1, 1, sharex=True, squeeze=False)[:, 0]
        steps = range(self.total_steps)
        for i, curve in enumerate(lrs):
            name = groups[i].get("name", f"pg{i}")
            axes[0].plot(steps, curve, label=f"{name} (lr_scale {scales[i]:g})" if len(lrs) > 1 else None)
        if len(lrs) > 1:
            axes[0].legend(fontsize="small")
        axes[0].set_ylabel("learning rate")
        axes[0].set_title(f"{self.name}: planned schedule, {self.total_steps} optimizer steps")
        if moms is not None:
            axes[1].plot(steps, moms, color="tab:orange")
            axes[1].set_ylabel("momentum / beta1")
        axes[-1].set_xlabel("optimizer step")
        if self.steps_per_epoch:
            for e in range(1, math.ceil(self.total_steps / self.steps_per_epoch)):
                for ax in axes:
                    ax.axvline(e * self.steps_per_epoch, color="0.9", lw=0.5, zorder=0)
        fig.tight_layout()
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            fig.savefig(os.path.join(log_dir, "schedule.png"), dpi=100)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("train/schedule", fig, global_step=trainer.global_step, close=False)

    # ---- hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(
                f"{self.name}: the number of optimizer steps is {total}; set trainer.max_epochs with a sized train "
                f"dataloader, or trainer.max_steps"
            )
        self.total_steps = int(total)
        nb = trainer.num_training_batches
        self.steps_per_epoch = math.ceil(nb / trainer.accumulate_grad_batches) if math.isfinite(nb) else None
        self._resolve_auto(trainer)
        self._validate_for_run(trainer)
        self._check_resume(trainer)
        self._check_optimizer(trainer)
        self._apply(trainer, log_values=False)  # logged by the first on_train_batch_start
        if self.plot:
            self._plot(trainer)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._apply(trainer, log_values=True)

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.shape_params(),
            "total_steps": self.total_steps,
            "max_lr_auto": bool(getattr(self, "_max_lr_auto", False)),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Compared with the current configuration in on_train_start, once total_steps is known.
        self._loaded_state = dict(state_dict)

    def _need_epochs(self, unit: str, key: str) -> None:
        if unit == "epoch" and self.steps_per_epoch is None:
            raise ValueError(
                f"{self.name}: `{key}` is in epochs (unit='epoch') but the train dataloader has no length; "
                f"use unit='step' or 'fraction'"
            )


# --------------------------------------------------------------------------- one-cycle
class OneCycle(ScheduleCallback):
    """One-cycle policy (Smith 2018) with inverse cyclic momentum; torch ``OneCycleLR`` semantics.

    Args:
        max_lr: peak LR (> 0), or ``"auto"`` (set by the LR range test before training).
        div_factor: start LR = ``max_lr / div_factor`` (> 0).
        final_div_factor: final LR = start LR / ``final_div_factor`` (> 0).
        pct_start: fraction of the steps spent raising the LR, in (0, 1); < 0.5 with ``three_phase``
            (then the cycle takes ``2 * pct_start`` of the run and the rest annihilates the LR).
        three_phase: up, back down to the start LR, then annihilation (Smith's shape); False: torch's
            two-phase default (up, then straight down to the final LR).
        anneal_strategy: ``"linear"`` or ``"cos"`` pieces.
        cycle_momentum: cycle the optimizer's momentum (SGD ``momentum`` / Adam ``betas[0]``) inversely.
        base_momentum, max_momentum: momentum at the LR peak / at the ends, in [0, 1), base <= max.
        plot: draw the planned curves at fit start.
    """

    def __init__(
        self,
        max_lr: float | str = "auto",
        div_factor: float = 10.0,
        final_div_factor: float = 100.0,
        pct_start: float = 0.45,
        three_phase: bool = True,
        anneal_strategy: str = "linear",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        plot: bool = True,
    ) -> None:
        super().__init__(plot=plot)
        who = self.name
        _check_max_lr(who, max_lr)
        _check(_is_number(div_factor) and div_factor > 0, who, "div_factor", "a number > 0", div_factor)
        _check(_is_number(final_div_factor) and final_div_factor > 0, who, "final_div_factor", "a number > 0",
               final_div_factor)
        _check(isinstance(three_phase, bool), who, "three_phase", "true or false", three_phase)
        if three_phase:
            _check(_is_number(pct_start) and 0 < pct_start < 0.5, who, "pct_start",
                   "in (0, 0.5) with three_phase=true (the cycle spans 2 * pct_start of the run)", pct_start)
        else:
            _check(_is_number(pct_start) and 0 < pct_start < 1, who, "pct_start", "in (0, 1)", pct_start)
        _check(anneal_strategy in schedules.ANNEAL_STRATEGIES, who, "anneal_strategy",
               f"one of {schedules.ANNEAL_STRATEGIES}", anneal_strategy)
        _check(isinstance(cycle_momentum, bool), who, "cycle_momentum", "true or false", cycle_momentum)
        _check_momentum(who, "base_momentum", base_momentum)
        _check_momentum(who, "max_momentum", max_momentum)
        _check(base_momentum <= max_momentum, who, "base_momentum", f"<= max_momentum ({max_momentum})",
               base_momentum)
        self._max_lr_auto = max_lr == "auto"
        self.max_lr = max_lr if self._max_lr_auto else float(max_lr)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.pct_start = float(pct_start)
        self.three_phase = three_phase
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)

    @property
    def schedules_momentum(self) -> bool:
        return self.cycle_momentum

    def _validate_for_run(self, trainer: pl.Trainer) -> None:
        assert self.total_steps is not None
        if self.pct_start * self.total_steps <= 1:
            raise ValueError(
                f"{self.name}: the run has only {self.total_steps} optimizer steps; `pct_start` * total_steps must "
                f"be > 1 (got pct_start={self.pct_start}): train longer or raise pct_start"
            )

    def schedule_values(self, step: int) -> tuple[float, float | None]:
        assert self.total_steps is not None
        lr, mom = schedules.one_cycle(
            step, self.total_steps, self.max_lr, self.div_factor, self.final_div_factor, self.pct_start,
            self.three_phase, self.anneal_strategy, self.base_momentum, self.max_momentum,
        )
        return lr, (mom if self.cycle_momentum else None)


# --------------------------------------------------------------------------- piecewise
class Piecewise(ScheduleCallback):
    """Piecewise-linear (or cosine) LR through knots, e.g. the ResNet-9 recipe 0 -> 0.4 (epoch 5) -> 0 (epoch 24).

    Args:
        knots: positions, non-decreasing, >= 0, in ``unit`` (a repeated knot makes a jump).
        values: absolute LRs (>= 0) at the knots; constant before the first / after the last knot.
        unit: ``"epoch"``, ``"fraction"`` (of the run, knots in [0, 1]) or ``"step"`` (optimizer steps).
        momentum_values: optional momentum (SGD) / beta1 (Adam) values in [0, 1) at ``momentum_knots``.
        momentum_knots: knots of the momentum curve (same unit); default: ``knots``.
        anneal_strategy: ``"linear"`` or ``"cos"`` pieces.
        plot: draw the planned curves at fit start.
    """

    momentum_key_name = "momentum_values"

    def __init__(
        self,
        knots: Sequence[float] = (0, 5, 24),
        values: Sequence[float] = (0.0, 0.4, 0.0),
        unit: str = "epoch",
        momentum_values: Sequence[float] | None = None,
        momentum_knots: Sequence[float] | None = None,
        anneal_strategy: str = "linear",
        plot: bool = True,
    ) -> None:
        super().__init__(plot=plot)
        who = self.name
        _check(unit in _UNITS, who, "unit", f"one of {_UNITS}", unit)
        _check(anneal_strategy in schedules.ANNEAL_STRATEGIES, who, "anneal_strategy",
               f"one of {schedules.ANNEAL_STRATEGIES}", anneal_strategy)
        self.knots = self._check_knots("knots", knots, unit)
        self.values = _floats(who, "values", values)
        _check(len(self.values) == len(self.knots), who, "values", f"a list as long as `knots` ({len(self.knots)})",
               values)
        _check(all(v >= 0 for v in self.values), who, "values", "learning rates >= 0", values)
        self.momentum_values = _floats(who, "momentum_values", momentum_values, allow_none=True)
        if momentum_knots is not None and momentum_values is None:
            raise ValueError(f"{who}: `momentum_knots` given without `momentum_values`")
        self.momentum_knots = (
            self._check_knots("momentum_knots", momentum_knots, unit) if momentum_knots is not None
            else (list(self.knots) if self.momentum_values is not None else None)
        )
        if self.momentum_values is not None:
            _check(len(self.momentum_values) == len(self.momentum_knots), who, "momentum_values",
                   f"a list as long as the momentum knots ({len(self.momentum_knots)})", momentum_values)
            for m in self.momentum_values:
                _check_momentum(who, "momentum_values", m)
        self.unit = unit
        self.anneal_strategy = anneal_strategy
        self._knot_steps: list[float] = []
        self._momentum_knot_steps: list[float] | None = None

    def _check_knots(self, key: str, knots: Any, unit: str) -> list[float]:
        who = self.name
        ks = _floats(who, key, knots)
        _check(len(ks) >= 1, who, key, "a non-empty list", knots)
        _check(all(k >= 0 for k in ks), who, key, "positions >= 0", knots)
        _check(all(b >= a for a, b in zip(ks, ks[1:])), who, key, "non-decreasing", knots)
        if unit == "fraction":
            _check(all(k <= 1 for k in ks), who, key, "fractions of the run in [0, 1] (unit='fraction')", knots)
        return ks

    @property
    def schedules_momentum(self) -> bool:
        return self.momentum_values is not None

    def _validate_for_run(self, trainer: pl.Trainer) -> None:
        self._need_epochs(self.unit, "knots")
        self._knot_steps = [self._to_steps(k, self.unit) for k in self.knots]
        if self.momentum_knots is not None:
            self._momentum_knot_steps = [self._to_steps(k, self.unit) for k in self.momentum_knots]

    def schedule_values(self, step: int) -> tuple[float, float | None]:
        lr = schedules.piecewise(step, self._knot_steps, self.values, self.anneal_strategy)
        if self.momentum_values is None:
            return lr, None
        return lr, schedules.piecewise(step, self._momentum_knot_steps, self.momentum_values, self.anneal_strategy)


# --------------------------------------------------------------------------- cyclic
class Cyclic(ScheduleCallback):
    """Cyclical learning rates (Smith 2015); torch ``CyclicLR`` semantics.

    Args:
        base_lr: lower LR bound (>= 0).
        max_lr: upper LR bound (> base_lr), or ``"auto"`` (set by the LR range test).
        step_size_up: length of the rising half-cycle in ``unit`` (>= 1 optimizer step; the paper advises
            2-10 epochs' worth).
        step_size_down: length of the falling half-cycle; default ``step_size_up``.
        mode: ``"triangular"``, ``"triangular2"`` (amplitude halved each cycle) or ``"exp_range"``
            (amplitude times ``gamma**step``).
        gamma: decay constant of ``exp_range``, in (0, 1].
        unit: ``"step"`` (optimizer steps, as torch) or ``"epoch"`` (``steps_per_epoch`` optimizer steps each).
        cycle_momentum: cycle the momentum inversely between ``max_momentum`` and ``base_momentum``.
        base_momentum, max_momentum: in [0, 1), base <= max.
        plot: draw the planned curves at fit start.
    """

    def __init__(
        self,
        base_lr: float = 0.01,
        max_lr: float | str = "auto",
        step_size_up: float = 2000,
        step_size_down: float | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        unit: str = "step",
        cycle_momentum: bool = False,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        plot: bool = True,
    ) -> None:
        super().__init__(plot=plot)
        who = self.name
        _check(_is_number(base_lr) and base_lr >= 0, who, "base_lr", "a number >= 0", base_lr)
        _check_max_lr(who, max_lr)
        if max_lr != "auto":
            _check(max_lr > base_lr, who, "max_lr", f"> base_lr ({base_lr})", max_lr)
        _check(unit in ("step", "epoch"), who, "unit", "'step' or 'epoch'", unit)
        min_size, allowed = (1, ">= 1 (optimizer steps)") if unit == "step" else (0, "> 0 (epochs)")
        _check(_is_number(step_size_up) and step_size_up >= min_size and (unit == "step" or step_size_up > 0),
               who, "step_size_up", allowed, step_size_up)
        if step_size_down is not None:
            _check(_is_number(step_size_down) and step_size_down >= min_size and (unit == "step" or step_size_down > 0),
                   who, "step_size_down", allowed + " or null", step_size_down)
        _check(mode in schedules.CYCLIC_MODES, who, "mode", f"one of {schedules.CYCLIC_MODES}", mode)
        _check(_is_number(gamma) and 0 < gamma <= 1, who, "gamma", "in (0, 1]", gamma)
        _check(isinstance(cycle_momentum, bool), who, "cycle_momentum", "true or false", cycle_momentum)
        _check_momentum(who, "base_momentum", base_momentum)
        _check_momentum(who, "max_momentum", max_momentum)
        _check(base_momentum <= max_momentum, who, "base_momentum", f"<= max_momentum ({max_momentum})",
               base_momentum)
        self.base_lr = float(base_lr)
        self._max_lr_auto = max_lr == "auto"
        self.max_lr = max_lr if self._max_lr_auto else float(max_lr)
        self.step_size_up = float(step_size_up)
        self.step_size_down = None if step_size_down is None else float(step_size_down)
        self.mode = mode
        self.gamma = float(gamma)
        self.unit = unit
        self.cycle_momentum = cycle_momentum
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)
        self._up = self._down = 0.0

    @property
    def schedules_momentum(self) -> bool:
        return self.cycle_momentum

    def _validate_for_run(self, trainer: pl.Trainer) -> None:
        if self.max_lr <= self.base_lr:
            raise ValueError(f"{self.name}: `max_lr` must be > base_lr ({self.base_lr}), got {self.max_lr!r}")
        self._need_epochs(self.unit, "step_size_up")
        per = 1.0 if self.unit == "step" else float(self.steps_per_epoch)
        self._up = self.step_size_up * per
        self._down = (self.step_size_down if self.step_size_down is not None else self.step_size_up) * per
        for key, size in (("step_size_up", self._up), ("step_size_down", self._down)):
            if size < 1:
                raise ValueError(
                    f"{self.name}: `{key}` is {size:g} optimizer steps ({self.steps_per_epoch} steps per epoch); "
                    f"it must be >= 1 step"
                )

    def schedule_values(self, step: int) -> tuple[float, float | None]:
        lr, mom = schedules.cyclic(
            step, self.base_lr, self.max_lr, self._up, self._down, self.mode, self.gamma,
            self.base_momentum, self.max_momentum,
        )
        return lr, (mom if self.cycle_momentum else None)


# --------------------------------------------------------------------------- warm-up
class Warmup(ScheduleCallback):
    """Warm-up (Goyal et al. 2017) in front of a constant, step or cosine decay; momentum left to the optimizer.

    Args:
        max_lr: target LR reached after the warm-up (> 0), or ``"auto"``.
        warmup_length: length of the warm-up in ``unit`` (>= 0; shorter than the run, checked at start).
        warmup_type: ``"constant"`` (``max_lr * warmup_factor`` during the warm-up, then ``max_lr``) or
            ``"gradual"`` (linear ramp from ``max_lr * warmup_factor`` to ``max_lr``).
        warmup_factor: start LR as a fraction of ``max_lr``, in [0, 1].
        decay: after the warm-up: ``"constant"``, ``"step"`` (times ``gamma`` at each milestone) or
            ``"cosine"`` (to ``eta_min`` at the last step).
        milestones: positions (``unit``, from the start of training) of the step decays, non-decreasing.
        gamma: step-decay factor, in (0, 1].
        eta_min: final LR of the cosine decay, in [0, max_lr).
        unit: ``"epoch"``, ``"fraction"`` or ``"step"``.
        plot: draw the planned curves at fit start.
    """

    def __init__(
        self,
        max_lr: float | str = "auto",
        warmup_length: float = 5,
        warmup_type: str = "gradual",
        warmup_factor: float = 0.1,
        decay: str = "constant",
        milestones: Sequence[float] = (),
        gamma: float = 0.1,
        eta_min: float = 0.0,
        unit: str = "epoch",
        plot: bool = True,
    ) -> None:
        super().__init__(plot=plot)
        who = self.name
        _check_max_lr(who, max_lr)
        _check(_is_number(warmup_length) and warmup_length >= 0, who, "warmup_length", f"a number >= 0 ({unit}s)",
               warmup_length)
        _check(warmup_type in schedules.WARMUP_TYPES, who, "warmup_type", f"one of {schedules.WARMUP_TYPES}",
               warmup_type)
        _check(_is_number(warmup_factor) and 0 <= warmup_factor <= 1, who, "warmup_factor", "in [0, 1]",
               warmup_factor)
        _check(decay in schedules.DECAYS, who, "decay", f"one of {schedules.DECAYS}", decay)
        _check(unit in _UNITS, who, "unit", f"one of {_UNITS}", unit)
        ms = _floats(who, "milestones", milestones if milestones is not None else [])
        _check(all(m >= 0 for m in ms) and all(b >= a for a, b in zip(ms, ms[1:])), who, "milestones",
               "non-decreasing positions >= 0", milestones)
        _check(_is_number(gamma) and 0 < gamma <= 1, who, "gamma", "in (0, 1]", gamma)
        _check(_is_number(eta_min) and eta_min >= 0, who, "eta_min", "a number >= 0", eta_min)
        if max_lr != "auto":
            _check(eta_min < max_lr, who, "eta_min", f"< max_lr ({max_lr})", eta_min)
        if unit == "fraction":
            _check(warmup_length < 1, who, "warmup_length", "a fraction of the run in [0, 1)", warmup_length)
        self._max_lr_auto = max_lr == "auto"
        self.max_lr = max_lr if self._max_lr_auto else float(max_lr)
        self.warmup_length = float(warmup_length)
        self.warmup_type = warmup_type
        self.warmup_factor = float(warmup_factor)
        self.decay = decay
        self.milestones = ms
        self.gamma = float(gamma)
        self.eta_min = float(eta_min)
        self.unit = unit
        self._warmup_steps = 0.0
        self._milestone_steps: list[float] = []

    def _validate_for_run(self, trainer: pl.Trainer) -> None:
        if self.eta_min >= self.max_lr:
            raise ValueError(f"{self.name}: `eta_min` must be < max_lr ({self.max_lr}), got {self.eta_min!r}")
        self._need_epochs(self.unit, "warmup_length")
        length = self._run_length(self.unit)
        if self.warmup_length >= length:
            raise ValueError(
                f"{self.name}: `warmup_length` must be shorter than training: got {self.warmup_length:g} "
                f"{self.unit}(s), the run is {length:g} {self.unit}(s) ({self.total_steps} optimizer steps)"
            )
        self._warmup_steps = self._to_steps(self.warmup_length, self.unit)
        self._milestone_steps = [self._to_steps(m, self.unit) for m in self.milestones]

    def schedule_values(self, step: int) -> tuple[float, float | None]:
        assert self.total_steps is not None
        return schedules.warmup(
            step, self.total_steps, self.max_lr, self._warmup_steps, self.warmup_type, self.warmup_factor,
            self.decay, self._milestone_steps, self.gamma, self.eta_min,
        ), None
