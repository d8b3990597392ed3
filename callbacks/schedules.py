"""Pure learning-rate / momentum schedule functions (plain floats, no torch).

Every schedule is a function ``f(step, total_steps, *shape parameters)`` of the
optimizer step (``trainer.global_step``: 0 for the first optimizer step,
``total_steps - 1`` for the last one). The Lightning callbacks in
:mod:`callbacks.lr_schedule` only convert units, validate and call these.

Primitives
    :func:`anneal` (one linear or cosine piece) and :func:`piecewise` (a curve
    through knots made of such pieces, constant outside the knots). Every
    schedule below is built from them.

Schedules
    * :func:`one_cycle` -- Smith (2018), "A disciplined approach to neural network
      hyper-parameters: Part 1" / Smith & Topin (2017) "Super-convergence".
      Same arguments and values as ``torch.optim.lr_scheduler.OneCycleLR``.
    * :func:`cyclic` -- Smith (2015/2017), "Cyclical learning rates for training
      neural networks". Same values as ``torch.optim.lr_scheduler.CyclicLR``.
    * :func:`warmup` -- Goyal et al. (2017), "Accurate, large minibatch SGD":
      constant or gradual warm-up in front of a constant, step or cosine decay.
    * :func:`gradient_noise_sigma` -- Neelakantan et al. (2015), "Adding gradient
      noise improves learning for very deep networks".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ANNEAL_STRATEGIES = ("linear", "cos")
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")
WARMUP_TYPES = ("constant", "gradual")
DECAYS = ("constant", "step", "cosine")


# --------------------------------------------------------------------------- primitives
def anneal(start: float, end: float, pct: float, strategy: str = "linear") -> float:
    """Value ``pct`` (0 -> ``start``, 1 -> ``end``) of the way along one piece.

    ``linear`` is a straight line, ``cos`` half a cosine wave (flat at both ends).
    The formulas are exactly torch's ``OneCycleLR._annealing_*``.
    """
    if strategy == "linear":
        return (end - start) * pct + start
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    raise ValueError(f"anneal_strategy must be one of {ANNEAL_STRATEGIES}, got {strategy!r}")


def piecewise(x: float, knots: Sequence[float], values: Sequence[float], strategy: str = "linear") -> float:
    """Curve through the points ``(knots[i], values[i])``, evaluated at ``x``.

    Between two knots the curve is one :func:`anneal` piece; before the first
    knot it is ``values[0]``, after the last ``values[-1]``. Knots must be
    non-decreasing; a repeated knot makes a jump (the left value holds at the
    knot itself, the right one just after it).
    """
    if len(knots) != len(values) or not knots:
        raise ValueError(f"knots and values must be non-empty and of equal length, got {len(knots)} and {len(values)}")
    if x <= knots[0]:
        return float(values[0])
    for i in range(1, len(knots)):
        if x <= knots[i]:  # here knots[i-1] < x <= knots[i], so the piece has positive length
            pct = (x - knots[i - 1]) / (knots[i] - knots[i - 1])
            return anneal(values[i - 1], values[i], pct, strategy)
    return float(values[-1])


# --------------------------------------------------------------------------- one-cycle
def one_cycle_knots(
    total_steps: int, pct_start: float, three_phase: bool
) -> list[float]:
    """Phase boundaries (in optimizer steps) exactly as ``OneCycleLR`` computes them.

    Two phases: ``[0, pct_start*total - 1, total - 1]``; three phases:
    ``[0, pct_start*total - 1, 2*pct_start*total - 2, total - 1]``.
    """
    if three_phase:
        knots = [0.0, float(pct_start * total_steps) - 1, float(2 * pct_start * total_steps) - 2, total_steps - 1]
    else:
        knots = [0.0, float(pct_start * total_steps) - 1, total_steps - 1]
    if any(b <= a for a, b in zip(knots, knots[1:])):
        raise ValueError(
            f"total_steps={total_steps} is too small for pct_start={pct_start}: the one-cycle phases "
            f"{[round(k, 3) for k in knots]} must be strictly increasing (need pct_start * total_steps > 1)"
        )
    return knots


def one_cycle(
    step: int,
    total_steps: int,
    max_lr: float,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    pct_start: float = 0.3,
    three_phase: bool = False,
    anneal_strategy: str = "cos",
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> tuple[float, float]:
    """(lr, momentum) of the one-cycle policy at ``step`` (torch ``OneCycleLR`` semantics).

    The LR goes ``max_lr/div_factor`` -> ``max_lr`` -> (three-phase: back to
    ``max_lr/div_factor`` ->) ``max_lr/div_factor/final_div_factor`` at the last
    step; the momentum moves inversely, ``max_momentum`` -> ``base_momentum`` ->
    ``max_momentum`` (and stays there in the third phase).
    """
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    knots = one_cycle_knots(total_steps, pct_start, three_phase)
    if three_phase:
        lrs = [initial_lr, max_lr, initial_lr, min_lr]
        moms = [max_momentum, base_momentum, max_momentum, max_momentum]
    else:
        lrs = [initial_lr, max_lr, min_lr]
        moms = [max_momentum, base_momentum, max_momentum]
    return (
        piecewise(step, knots, lrs, anneal_strategy),
        piecewise(step, knots, moms, anneal_strategy),
    )


# --------------------------------------------------------------------------- cyclic
def cyclic(
    step: int,
    base_lr: float,
    max_lr: float,
    step_size_up: float = 2000,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
) -> tuple[float, float]:
    """(lr, momentum) of a cyclical schedule at ``step`` (torch ``CyclicLR`` semantics).

    Each cycle is a triangle: ``step_size_up`` steps from ``base_lr`` up to the
    (scaled) ``max_lr`` and ``step_size_down`` (default: same) back. The
    amplitude is scaled by 1 (``triangular``), halved every cycle
    (``triangular2``) or by ``gamma**step`` (``exp_range``). The momentum cycles
    inversely between ``max_momentum`` and ``base_momentum``.
    """
    if mode not in CYCLIC_MODES:
        raise ValueError(f"mode must be one of {CYCLIC_MODES}, got {mode!r}")
    up = float(step_size_up)
    down = float(step_size_down) if step_size_down is not None else up
    total_size = up + down
    ratio = up / total_size
    cycle = math.floor(1 + step / total_size)
    x = 1.0 + step / total_size - cycle  # position inside the current cycle, in [0, 1)
    height = piecewise(x, [0.0, ratio, 1.0], [0.0, 1.0, 0.0])
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = 1 / (2.0 ** (cycle - 1))
    else:
        scale = gamma**step
    lr = base_lr + (max_lr - base_lr) * height * scale
    momentum = max_momentum - (max_momentum - base_momentum) * height * scale
    return lr, momentum


# --------------------------------------------------------------------------- warm-up
def warmup(
    step: int,
    total_steps: int,
    max_lr: float,
    warmup_steps: float,
    warmup_type: str = "gradual",
    warmup_factor: float = 0.1,
    decay: str = "constant",
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    eta_min: float = 0.0,
) -> float:
    """LR with a warm-up (Goyal et al. 2017) in front of a decay, at ``step``.

    Steps ``s < warmup_steps`` are warm-up: ``constant`` uses
    ``max_lr * warmup_factor``; ``gradual`` ramps linearly from
    ``max_lr * warmup_factor`` (step 0) to ``max_lr`` (reached at step
    ``warmup_steps``). After it:

    * ``constant``: ``max_lr``;
    * ``step``: ``max_lr * gamma**k`` with ``k`` the number of ``milestones``
      (in steps, counted from step 0) that are ``<= step``;
    * ``cosine``: half a cosine from ``max_lr`` at ``warmup_steps`` to
      ``eta_min`` at the last step ``total_steps - 1``.
    """
    if warmup_type not in WARMUP_TYPES:
        raise ValueError(f"warmup_type must be one of {WARMUP_TYPES}, got {warmup_type!r}")
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
    start_lr = max_lr * warmup_factor
    if step < warmup_steps:
        if warmup_type == "constant":
            return start_lr
        return piecewise(step, [0.0, warmup_steps], [start_lr, max_lr])
    if decay == "constant":
        return max_lr
    if decay == "step":
        return max_lr * gamma ** sum(1 for m in milestones if m <= step)
    return piecewise(step, [warmup_steps, total_steps - 1], [max_lr, eta_min], "cos")


# --------------------------------------------------------------------------- gradient noise
def gradient_noise_sigma(step: int, eta: float = 0.3, gamma: float = 0.55) -> float:
    """Standard deviation of the gradient noise at step ``t``: ``sqrt(eta / (1 + t)**gamma)``."""
    return math.sqrt(eta / (1 + step) ** gamma)
