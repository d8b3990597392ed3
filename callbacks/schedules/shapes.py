"""Pure learning-rate / momentum schedules: plain floats, no torch, no Lightning.

Every schedule is a function ``f(step, total_steps, **shape, steps_per_epoch=None) -> (lr, momentum)`` of the
optimizer step (``0`` for the first optimizer step, ``total_steps - 1`` for the last one). ``momentum`` is
``None`` when the schedule leaves the optimizer's momentum alone. The shape parameters are what a config
(``conf/scheduler/*.yaml``, ``_partial_: true``) gives; the run's length and steps per epoch come from the
trainer, never from the config. :class:`callbacks.schedules.lr_schedule.LRSchedule` drives any of them.

Each function checks its own shape (``ValueError`` naming ``scheduler.<key>``), so the defaults and the rules
live here once.

Positions given in ``epoch`` or ``fraction`` units (knots, warm-up length, milestones, half-cycles) map linearly
onto optimizer steps so that 0 is step 0 and the end of training (``1`` for fractions, the run's length in
epochs for epochs) is the last step ``total_steps - 1`` (:func:`to_steps`). Unit ``step`` uses optimizer-step
indices as they are.

* :func:`one_cycle` -- Smith (2018), "A disciplined approach to neural network hyper-parameters: Part 1";
  Smith & Topin (2017), "Super-convergence". Same values as ``torch.optim.lr_scheduler.OneCycleLR``.
* :func:`cyclic` -- Smith (2015/2017), "Cyclical learning rates for training neural networks". Same values as
  ``torch.optim.lr_scheduler.CyclicLR``.
* :func:`piecewise` -- a curve through knots, e.g. Page (2018)'s ResNet-9 triangle.
* :func:`warmup` -- Goyal et al. (2017), "Accurate, large minibatch SGD": constant or gradual warm-up in front of
  a constant, step or cosine decay.
* :func:`gradient_noise_sigma` -- Neelakantan et al. (2015), "Adding gradient noise improves learning".
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

ANNEAL_STRATEGIES = ("linear", "cos")
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")
WARMUP_TYPES = ("constant", "gradual")
DECAYS = ("constant", "step", "cosine")
UNITS = ("epoch", "fraction", "step")


# --------------------------------------------------------------------------- checks
def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check(ok: bool, key: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"scheduler.{key} must be {allowed}, got {value!r}")


def _check_lr(key: str, value: Any, minimum_exclusive: bool = True) -> None:
    ok = _is_number(value) and (value > 0 if minimum_exclusive else value >= 0)
    _check(ok, key, "a number > 0" if minimum_exclusive else "a number >= 0", value)


def _check_momenta(base_momentum: Any, max_momentum: Any) -> None:
    for key, value in (("base_momentum", base_momentum), ("max_momentum", max_momentum)):
        _check(_is_number(value) and 0 <= value < 1, key, "a number in [0, 1)", value)
    _check(base_momentum <= max_momentum, "base_momentum", f"<= max_momentum ({max_momentum})", base_momentum)


def _check_choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    _check(value in allowed, key, f"one of {list(allowed)}", value)


def _positions(key: str, values: Any, unit: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"scheduler.{key} must be a list of numbers, got {values!r}") from None
    _check(all(math.isfinite(v) and v >= 0 for v in out), key, "positions >= 0", values)
    _check(all(b >= a for a, b in zip(out, out[1:])), key, "non-decreasing", values)
    if unit == "fraction":
        _check(all(v <= 1 for v in out), key, "fractions of the run in [0, 1] (unit=fraction)", values)
    return out


def to_steps(x: float, unit: str, total_steps: int, steps_per_epoch: float | None) -> float:
    """A position in ``unit`` as an optimizer step (see the module docstring)."""
    _check_choice("unit", unit, UNITS)
    if unit == "step":
        return float(x)
    last = total_steps - 1
    if unit == "fraction":
        return x * last
    if not steps_per_epoch:
        raise ValueError("scheduler.unit=epoch needs a train dataloader with a length; use unit=step or fraction")
    return x * last * steps_per_epoch / total_steps


def run_length(unit: str, total_steps: int, steps_per_epoch: float | None) -> float:
    """The run's length in ``unit``."""
    if unit == "step":
        return float(total_steps)
    if unit == "fraction":
        return 1.0
    return total_steps / steps_per_epoch if steps_per_epoch else math.inf


# --------------------------------------------------------------------------- primitives
def anneal(start: float, end: float, pct: float, strategy: str = "linear") -> float:
    """Value ``pct`` (0 -> ``start``, 1 -> ``end``) of the way along one linear or half-cosine piece; the formulas
    are torch's ``OneCycleLR._annealing_*``."""
    if strategy == "linear":
        return (end - start) * pct + start
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    raise ValueError(f"scheduler.anneal_strategy must be one of {list(ANNEAL_STRATEGIES)}, got {strategy!r}")


def knot_curve(x: float, knots: Sequence[float], values: Sequence[float], strategy: str = "linear") -> float:
    """The curve through ``(knots[i], values[i])`` at ``x``: one :func:`anneal` piece between two knots, constant
    outside them. A repeated knot makes a jump (the left value holds at the knot itself)."""
    if x <= knots[0]:
        return float(values[0])
    for i in range(1, len(knots)):
        if x <= knots[i]:  # knots[i-1] < x <= knots[i]: the piece has positive length
            return anneal(values[i - 1], values[i], (x - knots[i - 1]) / (knots[i] - knots[i - 1]), strategy)
    return float(values[-1])


# --------------------------------------------------------------------------- schedules
def one_cycle_knots(total_steps: int, pct_start: float, three_phase: bool) -> list[float]:
    """Phase boundaries in optimizer steps, exactly as ``OneCycleLR`` computes them."""
    up = float(pct_start * total_steps) - 1
    knots = [0.0, up, float(2 * pct_start * total_steps) - 2, total_steps - 1] if three_phase else [
        0.0, up, total_steps - 1]
    if pct_start * total_steps <= 1:  # the warm-up phase would end at or before step 0
        raise ValueError(f"the run has only {total_steps} optimizer steps: one-cycle with scheduler.pct_start="
                         f"{pct_start} needs more than 1/pct_start = {1 / pct_start:.3g} (pct_start x total_steps > 1); "
                         f"train longer (trainer.max_epochs, a smaller data.batch_size) or raise pct_start")
    if any(b <= a for a, b in zip(knots, knots[1:])):
        raise ValueError(f"scheduler.pct_start={pct_start} leaves no room for the phases of a {total_steps}-step run "
                         f"(phase boundaries at steps {[round(k, 3) for k in knots]}); three_phase needs pct_start "
                         f"<= 0.5")
    return knots


def one_cycle(step: int, total_steps: int, max_lr: float, div_factor: float = 10.0, final_div_factor: float = 100.0,
              pct_start: float = 0.45, three_phase: bool = True, anneal_strategy: str = "linear",
              cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
              steps_per_epoch: float | None = None) -> tuple[float, float | None]:
    """One-cycle policy with inverse cyclic momentum (``OneCycleLR`` semantics; defaults: Smith's three phases).

    LR ``max_lr/div_factor`` -> ``max_lr`` -> (three-phase: back to the start ->) ``start/final_div_factor`` at the
    last step; momentum ``max_momentum`` -> ``base_momentum`` -> ``max_momentum`` (and stays there)."""
    _check_lr("max_lr", max_lr)
    _check(_is_number(div_factor) and div_factor > 0, "div_factor", "a number > 0", div_factor)
    _check(_is_number(final_div_factor) and final_div_factor > 0, "final_div_factor", "a number > 0",
           final_div_factor)
    _check(isinstance(three_phase, bool), "three_phase", "true or false", three_phase)
    limit = 0.5 if three_phase else 1.0
    _check(_is_number(pct_start) and 0 < pct_start < limit, "pct_start",
           "in (0, 0.5) with three_phase=true (the cycle spans 2 x pct_start of the run)" if three_phase
           else "in (0, 1)", pct_start)
    _check_choice("anneal_strategy", anneal_strategy, ANNEAL_STRATEGIES)
    _check(isinstance(cycle_momentum, bool), "cycle_momentum", "true or false", cycle_momentum)
    _check_momenta(base_momentum, max_momentum)
    start = max_lr / div_factor
    knots = one_cycle_knots(total_steps, pct_start, three_phase)
    lrs = [start, max_lr, start, start / final_div_factor] if three_phase else [start, max_lr, start / final_div_factor]
    moms = [max_momentum, base_momentum, max_momentum, max_momentum][:len(knots)]
    lr = knot_curve(step, knots, lrs, anneal_strategy)
    return lr, (knot_curve(step, knots, moms, anneal_strategy) if cycle_momentum else None)


def cyclic(step: int, total_steps: int, base_lr: float, max_lr: float, step_size_up: float = 2000,
           step_size_down: float | None = None, mode: str = "triangular", gamma: float = 1.0, unit: str = "step",
           cycle_momentum: bool = False, base_momentum: float = 0.85, max_momentum: float = 0.95,
           steps_per_epoch: float | None = None) -> tuple[float, float | None]:
    """Cyclical LR (``CyclicLR`` semantics): triangles from ``base_lr`` up to ``max_lr`` over ``step_size_up`` and
    back over ``step_size_down`` (default: the same), in ``unit`` (``step`` or ``epoch``); the amplitude is scaled by
    1 (``triangular``), halved every cycle (``triangular2``) or by ``gamma**step`` (``exp_range``). Optional inverse
    momentum between ``max_momentum`` and ``base_momentum``."""
    _check_lr("base_lr", base_lr, minimum_exclusive=False)
    _check_lr("max_lr", max_lr)
    _check(max_lr > base_lr, "max_lr", f"> base_lr ({base_lr})", max_lr)
    _check(unit in ("step", "epoch"), "unit", "'step' or 'epoch'", unit)
    _check_choice("mode", mode, CYCLIC_MODES)
    _check(_is_number(gamma) and 0 < gamma <= 1, "gamma", "in (0, 1]", gamma)
    _check(isinstance(cycle_momentum, bool), "cycle_momentum", "true or false", cycle_momentum)
    _check_momenta(base_momentum, max_momentum)
    sizes = {"step_size_up": step_size_up, "step_size_down": step_size_up if step_size_down is None else step_size_down}
    for key, size in sizes.items():
        _check(_is_number(size) and size > 0, key, f"a number > 0 ({unit}s)", size)
        if unit == "epoch" and not steps_per_epoch:
            raise ValueError("scheduler.unit=epoch needs a train dataloader with a length; use unit=step")
        steps = float(size) * (steps_per_epoch if unit == "epoch" else 1)
        if steps < 1:
            raise ValueError(f"scheduler.{key} is {steps:g} optimizer steps ({steps_per_epoch} steps per epoch); it "
                             f"must be >= 1 step")
        sizes[key] = steps
    up, down = sizes["step_size_up"], sizes["step_size_down"]
    cycle = math.floor(1 + step / (up + down))
    x = 1.0 + step / (up + down) - cycle  # position inside the current cycle, in [0, 1)
    height = knot_curve(x, [0.0, up / (up + down), 1.0], [0.0, 1.0, 0.0])
    scale = 1.0 if mode == "triangular" else 1 / 2.0 ** (cycle - 1) if mode == "triangular2" else gamma**step
    lr = base_lr + (max_lr - base_lr) * height * scale
    return lr, (max_momentum - (max_momentum - base_momentum) * height * scale if cycle_momentum else None)


def piecewise(step: int, total_steps: int, knots: Sequence[float] = (0, 5, 24), values: Sequence[float] = (0.0, 0.4, 0.0),
              unit: str = "epoch", momentum_values: Sequence[float] | None = None,
              momentum_knots: Sequence[float] | None = None, anneal_strategy: str = "linear",
              steps_per_epoch: float | None = None) -> tuple[float, float | None]:
    """LR through ``values`` at ``knots`` (in ``unit``; non-decreasing, a repeated knot makes a jump); optional
    momentum through ``momentum_values`` at ``momentum_knots`` (default: ``knots``). Defaults: Page (2018)."""
    _check_choice("unit", unit, UNITS)
    _check_choice("anneal_strategy", anneal_strategy, ANNEAL_STRATEGIES)
    ks = _positions("knots", knots, unit)
    _check(len(ks) >= 1, "knots", "a non-empty list", knots)
    _check(values is not None and len(values) == len(ks), "values", f"a list as long as knots ({len(ks)})", values)
    _check(all(_is_number(v) and v >= 0 for v in values), "values", "learning rates >= 0", values)
    lr = knot_curve(step, [to_steps(k, unit, total_steps, steps_per_epoch) for k in ks], values, anneal_strategy)
    if momentum_values is None:
        _check(momentum_knots is None, "momentum_knots", "null when momentum_values is null", momentum_knots)
        return lr, None
    mks = ks if momentum_knots is None else _positions("momentum_knots", momentum_knots, unit)
    _check(len(momentum_values) == len(mks), "momentum_values", f"a list as long as the momentum knots ({len(mks)})",
           momentum_values)
    _check(all(_is_number(m) and 0 <= m < 1 for m in momentum_values), "momentum_values", "numbers in [0, 1)",
           momentum_values)
    mks = [to_steps(k, unit, total_steps, steps_per_epoch) for k in mks]
    return lr, knot_curve(step, mks, momentum_values, anneal_strategy)


def warmup(step: int, total_steps: int, max_lr: float, warmup_length: float = 5, warmup_type: str = "gradual",
           warmup_factor: float = 0.1, decay: str = "constant", milestones: Sequence[float] = (), gamma: float = 0.1,
           eta_min: float = 0.0, unit: str = "epoch", steps_per_epoch: float | None = None) -> tuple[float, None]:
    """Warm-up (Goyal et al. 2017) for ``warmup_length`` (in ``unit``): ``constant`` at ``max_lr * warmup_factor``,
    or ``gradual`` (linear from there to ``max_lr``); then ``constant``, ``step`` (x ``gamma`` at each milestone,
    counted from the start of training) or ``cosine`` (to ``eta_min`` at the last step). Momentum untouched."""
    _check_lr("max_lr", max_lr)
    _check_choice("unit", unit, UNITS)
    _check(_is_number(warmup_length) and warmup_length >= 0, "warmup_length", f"a number >= 0 ({unit}s)",
           warmup_length)
    _check_choice("warmup_type", warmup_type, WARMUP_TYPES)
    _check(_is_number(warmup_factor) and 0 <= warmup_factor <= 1, "warmup_factor", "in [0, 1]", warmup_factor)
    _check_choice("decay", decay, DECAYS)
    ms = _positions("milestones", milestones if milestones is not None else [], "step" if unit != "fraction" else unit)
    _check(_is_number(gamma) and 0 < gamma <= 1, "gamma", "in (0, 1]", gamma)
    _check(_is_number(eta_min) and 0 <= eta_min < max_lr, "eta_min", f"a number in [0, max_lr={max_lr})", eta_min)
    length = run_length(unit, total_steps, steps_per_epoch)
    if warmup_length >= length:
        raise ValueError(f"scheduler.warmup_length must be shorter than training: got {warmup_length:g} {unit}(s), "
                         f"the run is {length:g} {unit}(s) ({total_steps} optimizer steps)")
    warmup_steps = to_steps(warmup_length, unit, total_steps, steps_per_epoch)
    start_lr = max_lr * warmup_factor
    if step < warmup_steps:
        return (start_lr if warmup_type == "constant" else knot_curve(step, [0.0, warmup_steps], [start_lr, max_lr])), None
    if decay == "constant":
        return max_lr, None
    if decay == "step":
        passed = sum(1 for m in ms if to_steps(m, unit, total_steps, steps_per_epoch) <= step)
        return max_lr * gamma**passed, None
    return knot_curve(step, [warmup_steps, total_steps - 1], [max_lr, eta_min], "cos"), None


def gradient_noise_sigma(step: int, eta: float = 0.3, gamma: float = 0.55) -> float:
    """Standard deviation of the gradient noise at step ``t``: ``sqrt(eta / (1 + t)**gamma)``."""
    return math.sqrt(eta / (1 + step) ** gamma)


def shortfall(name: str, shape: dict[str, Any], total_steps: int, steps_per_epoch: float | None) -> str | None:
    """What of schedule ``name`` (its full ``shape``) a run of ``total_steps`` never reaches, said once at its start
    (LRSchedule): piecewise knots past the run's end (the LR stops on the way and never anneals), a cyclic half cycle
    longer than the run (the LR never reaches max_lr); None when the whole schedule fits."""
    if name == "piecewise":
        knots = [to_steps(k, shape["unit"], total_steps, steps_per_epoch) for k in shape["knots"]]
        if knots[-1] <= total_steps:  # a step's slack past the last one
            return None
        end = knot_curve(total_steps - 1, knots, shape["values"], shape["anneal_strategy"])
        return (f"scheduler.knots end at {shape['unit']} {shape['knots'][-1]:g}, past the end of the run "
                f"({run_length(shape['unit'], total_steps, steps_per_epoch):g} {shape['unit']}(s), {total_steps} "
                f"optimizer steps): its LR stops at {end:.4g} on the way to {shape['values'][-1]:g}, and the rest of "
                f"the schedule is never reached. Give knots within the run, or scheduler.unit=fraction (0: the first "
                f"step, 1: the last) to fit the same shape to any length")
    if name == "cyclic":
        up = float(shape["step_size_up"]) * ((steps_per_epoch or 1) if shape["unit"] == "epoch" else 1)
        if up <= total_steps:
            return None
        base, peak = float(shape["base_lr"]), float(shape["max_lr"])
        return (f"scheduler.step_size_up is {up:g} optimizer steps, longer than the run ({total_steps}): the LR "
                f"climbs from base_lr {base:.4g} to {base + (peak - base) * (total_steps - 1) / up:.4g} at most, never "
                f"to max_lr {peak:.4g}. Smith: step_size_up 2-10 epochs, a few cycles a run (lower it, or train "
                f"longer)")
    return None
