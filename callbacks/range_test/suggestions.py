"""Pure (numpy-only) rules that turn a recorded LR range test into learning rates.

Everything here works on plain sequences of learning rates and losses (or
accuracies); nothing touches torch or Lightning, so it can be tested on
synthetic curves with known answers. The loss rules take the zero-lag smoothed
curve of :func:`callbacks.range_test.smoothing.smooth_log_lr`.

Suggestions (see the functions for the exact definitions):

* ``loss_min``: the LR at the minimum of the smoothed loss (the default); where the loss sinks to a floor near
  zero and stays (a short test that memorised the few batches it cycled), where the floor starts.
* ``min_div10`` (Smith 2018, "A disciplined approach...", sec. 4.1 and the
  course rule): one decade below the LR at the minimum of the smoothed loss.
* ``steepest``: the LR where d(smoothed loss)/d(log10 LR) is most negative,
  looking only at points up to the minimum and skipping the first two smoothing
  bandwidths (edge transients). Slopes are taken against log LR, not raw LR
  (which would favour absurdly small LRs).
* ``valley``: the longest steep downhill stretch of the smoothed loss before its
  minimum (ignoring dips too small to matter), and the LR two thirds of the way down it (in log LR, from its top towards its bottom). Like
  fastai's ``valley`` (longest decreasing run, a point part-way down it), but on the
  zero-lag curve, with an explicit steepness threshold and lengths in decades.

Every rule reads the curve only up to its first *relapse* (:func:`relapse_index`): where the smoothed loss,
having fallen by at least 10% of its starting value, rises back above it. What follows is another regime, not a
trainable peak: on drawn shapes with Nesterov SGD (issue 20, seed 2) the loss spiked past its start at 0.05, then
settled at chance level (a network predicting the uniform distribution) around 0.7, a hair below the real minimum
near 0.01, and ``loss_min`` became 0.7: the run trained at chance.

Smith's accuracy test (Smith 2015, "Cyclical Learning Rates for Training
Neural Networks", sec. 3.3) is analysed by :func:`accuracy_test_bounds`.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from callbacks.range_test.smoothing import as_1d, check_pair, default_bandwidth, log_lr_slope, smooth_log_lr

__all__ = [
    "SUGGESTIONS",
    "suggest_loss_min",
    "floor_start",
    "suggest_min_div10",
    "suggest_steepest",
    "suggest_valley",
    "valley_stretch",
    "relapse_index",
    "rise_point",
    "compute_suggestions",
    "binomial_stderr",
    "accuracy_test_bounds",
]

#: Names of the loss-based suggestions, in reporting order.
SUGGESTIONS: Tuple[str, ...] = ("min_div10", "steepest", "valley", "loss_min")


# ---------------------------------------------------------------------------
# suggestions (all take the zero-lag smoothed curve)
# ---------------------------------------------------------------------------
#: A smoothed loss below this share of its first value that stays there to the end of the test is a *floor*.
FLOOR = 0.1


def floor_start(smoothed: Sequence[float]) -> Optional[int]:
    """The index where the smoothed loss falls below ``FLOOR`` times its first value, if it stays below from there
    to the end (no blow-up); else ``None``. A test that cycles a few batches can memorise them: the loss then sits
    near zero whatever the LR (no gradient left to blow up with), and where along that floor its minimum lies is
    noise (a 256-image set cycled in 4 batches: minimum at 4.3, where training fails; the best max_lr was 0.05)."""
    y = as_1d("smoothed", smoothed)
    if y.size == 0 or not (np.isfinite(y[0]) and y[0] > 0):
        return None
    below = np.isfinite(y) & (y < FLOOR * y[0])
    if not below.any():
        return None
    start = int(np.argmax(below))
    return start if below[start:].all() else None


def suggest_loss_min(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """The LR at the minimum of the smoothed loss: the largest LR that still lowers the loss in a short sweep,
    which is where Smith & Topin (2017) put a one-cycle peak (the cycle's warm-up keeps it stable). On a
    :func:`floor_start` floor, the LR where the floor starts."""
    lr, y = check_pair(lrs, smoothed)
    start = floor_start(y)
    return float(lr[start if start is not None else int(np.nanargmin(y))])


def suggest_min_div10(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """One decade below the LR at the minimum of the smoothed loss."""
    return suggest_loss_min(lrs, smoothed) / 10.0


def suggest_steepest(lrs: Sequence[float], smoothed: Sequence[float], skip_start: float = 0.0) -> float:
    """LR of the most negative slope d loss / d log10 LR, among the points up to
    and including the minimum of the smoothed loss (so the blow-up after the
    minimum, or a lucky dip in it, can never be picked).

    Points less than ``skip_start`` decades above the first LR are skipped (unless
    that leaves none): a smoother is least certain at the edge of the data and the
    first losses often hold start-up transients. :func:`compute_suggestions` skips
    two smoothing bandwidths.
    """
    lr, y = check_pair(lrs, smoothed)
    i_min = int(np.nanargmin(y))
    slope = log_lr_slope(lr, y)[: i_min + 1]
    x = np.log10(lr[: i_min + 1])
    allowed = x >= x[0] + skip_start
    if not allowed.any():
        allowed[:] = True
    slope = np.where(allowed, slope, np.inf)
    return float(lr[int(np.argmin(slope))])


def valley_stretch(
    lrs: Sequence[float],
    smoothed: Sequence[float],
    steep_frac: float = 0.1,
    max_gap: float = 0.3,
    min_drop_frac: float = 0.25,
) -> Tuple[int, int]:
    """Index range ``(start, end)`` (inclusive) of the longest steep downhill stretch before the minimum.

    Only the curve up to and including its minimum is considered: a descent after the minimum (a late bump in
    the blow-up) can never be picked.

    1. A point is *steep downhill* when its slope d loss / d log10 LR is negative and at
       least ``steep_frac`` times the steepest (most negative) slope of the whole curve.
    2. Runs are maximal contiguous sequences of steep points.
    3. Two consecutive runs are merged when the gap between them is at most ``max_gap``
       decades of LR and the loss at the end of the gap is not higher than at its start
       (a short shoulder or noise wiggle does not cut a descent in two).
    4. Runs whose loss drop is below ``min_drop_frac`` of the total drop (highest loss before the
       minimum minus the minimum) are ignored -- a tiny early dip is noise, not the valley (unless no run is
       big enough).
    5. The stretch is the longest run, measured in decades of LR
       (``log10 lr[end] - log10 lr[start]``), not in points, so a linear sweep (dense at
       high LR) is not favoured towards its top end. Ties go to the earlier run.

    If no slope is negative the whole curve up to the minimum is returned.
    """
    if not 0.0 <= steep_frac < 1.0:
        raise ValueError(f"steep_frac must be in [0, 1), got {steep_frac}")
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    if not 0.0 <= min_drop_frac <= 1.0:
        raise ValueError(f"min_drop_frac must be in [0, 1], got {min_drop_frac}")
    lr, y = check_pair(lrs, smoothed)
    i_min = int(np.nanargmin(y))
    lr, y = lr[: i_min + 1], y[: i_min + 1]
    x = np.log10(lr)
    slope = log_lr_slope(lr, y)
    steepest = float(np.nanmin(slope)) if slope.size else 0.0
    if not steepest < 0:
        return 0, lr.size - 1
    steep = (slope <= steep_frac * steepest) & (slope < 0)
    runs: List[Tuple[int, int]] = []
    i, n = 0, lr.size
    while i < n:
        if not steep[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and steep[j + 1]:
            j += 1
        if runs and x[i] - x[runs[-1][1]] <= max_gap and y[i] <= y[runs[-1][1]]:
            runs[-1] = (runs[-1][0], j)
        else:
            runs.append((i, j))
        i = j + 1
    total = float(np.nanmax(y) - y[-1])
    big = [r for r in runs if y[r[0]] - y[r[1]] >= min_drop_frac * total] or runs
    return max(big, key=lambda r: (x[r[1]] - x[r[0]], -r[0]))


def suggest_valley(
    lrs: Sequence[float],
    smoothed: Sequence[float],
    steep_frac: float = 0.1,
    position: float = 2.0 / 3.0,
    max_gap: float = 0.3,
) -> float:
    """LR ``position`` (default 2/3) of the way along the longest steep downhill
    stretch (see :func:`valley_stretch`), interpolated in log10 LR:
    ``10 ** (x_start + position * (x_end - x_start))``."""
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must be in [0, 1], got {position}")
    lr, _ = check_pair(lrs, smoothed)
    s, e = valley_stretch(lrs, smoothed, steep_frac, max_gap)
    xs, xe = math.log10(lr[s]), math.log10(lr[e])
    return float(10.0 ** (xs + position * (xe - xs)))


def relapse_index(smoothed: Sequence[float], drop: float = 0.1) -> Optional[int]:
    """The first index at which the smoothed loss, after falling below ``(1 - drop)`` times its first value, is
    back at or above that first value; ``None`` if it never is (or the first value is not positive)."""
    y = as_1d("smoothed", smoothed)
    if y.size == 0 or not (np.isfinite(y[0]) and y[0] > 0):
        return None
    fallen = False
    for i, v in enumerate(y):
        fallen = fallen or v < (1.0 - drop) * y[0]
        if fallen and not v < y[0]:  # a non-finite value counts as a rise
            return i
    return None


def rise_point(lrs: Sequence[float], smoothed: Sequence[float], share: float) -> Optional[float]:
    """The first LR at which the smoothed loss stands more than ``share`` (e.g. 0.1) above its lowest value so far:
    where the curve's first rise starts (a non-finite value after a finite one counts as a rise); ``None`` when it
    never rises that far. Not a rule of its own: it lies beyond the loss minimum, and it is where an SGD-family run
    trains when no max_lr trial learned (:func:`callbacks.range_test.trials.untrained_fallback`)."""
    lr, y = check_pair(lrs, smoothed)
    lowest = math.inf
    for x, v in zip(lr, y):
        if math.isfinite(lowest) and not v <= (1.0 + share) * lowest:
            return float(x)
        if math.isfinite(v):
            lowest = min(lowest, v)
    return None


def compute_suggestions(
    lrs: Sequence[float],
    losses: Sequence[float],
    bandwidth: Optional[float] = None,
) -> Tuple[Dict[str, float], np.ndarray]:
    """Smooth the raw ``losses`` with :func:`smooth_log_lr` and return
    ``({name: lr for name in SUGGESTIONS}, smoothed)``. Non-finite losses (the
    blow-up at the end of a sweep) are ignored by the smoother. ``bandwidth=None``
    uses :func:`default_bandwidth`; ``steepest`` skips the first two bandwidths. Every suggestion is <= the
    LR of the smoothed-loss minimum, and the rules read the curve only before its :func:`relapse_index`."""
    lr, loss = check_pair(lrs, losses)
    if np.isfinite(loss).sum() < 3:
        raise ValueError("need at least 3 finite loss values to make suggestions")
    if bandwidth is None:
        bandwidth = default_bandwidth(np.log10(lr))
    smoothed = smooth_log_lr(lr, loss, bandwidth)
    relapse = relapse_index(smoothed)
    end = relapse if relapse is not None and np.isfinite(smoothed[:relapse]).sum() >= 3 else len(lr)
    lr_, curve = lr[:end], smoothed[:end]
    loss_min = suggest_loss_min(lr_, curve)
    out = {
        "min_div10": suggest_min_div10(lr_, curve),
        "steepest": suggest_steepest(lr_, curve, skip_start=2.0 * bandwidth),
        "valley": suggest_valley(lr_, curve),
        "loss_min": loss_min,
    }
    # no suggestion lies beyond the smoothed-loss minimum (each rule already looks only up to it; keep it so)
    return {name: min(value, loss_min) for name, value in out.items()}, smoothed


# ---------------------------------------------------------------------------
# Smith 2015 accuracy test
# ---------------------------------------------------------------------------
def binomial_stderr(acc: float, n: Optional[int]) -> float:
    """Standard error ``sqrt(p (1 - p) / n)`` of an accuracy ``p`` measured on ``n`` images (0 when ``n`` is
    None: exact values)."""
    if n is None:
        return 0.0
    if n < 1:
        raise ValueError(f"the number of images per accuracy point must be >= 1, got {n}")
    p = min(max(float(acc), 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def accuracy_test_bounds(
    lrs: Sequence[float],
    accs: Sequence[float],
    bandwidth: Optional[float] = 0.0,
    rise_frac: float = 0.1,
    plateau_frac: float = 0.9,
    ragged_frac: float = 0.25,
    num_images: Optional[int] = None,
) -> Dict[str, float]:
    """``base_lr`` and ``max_lr`` from an LR-vs-validation-accuracy ramp (Smith 2015, sec. 3.3:
    "note the learning rate value when the accuracy starts to increase and when the
    accuracy slows, becomes ragged, or starts to fall").

    Rule (``a`` = accuracy, optionally smoothed with :func:`smooth_log_lr` on the
    *linear* LR axis when ``bandwidth`` is not 0; ``None`` picks the default;
    ``se(v)`` = :func:`binomial_stderr` of ``v`` on ``num_images`` images, 0 if that is None):

    * ``a0 = a[0]``, ``p = argmax(a)``, ``rise = a[p] - a0``. If the rise is within what noise alone gives the
      best of the points (:func:`noise_rise`) the accuracy never rose: a ``ValueError`` says to widen the LR range.
    * ``base_lr``: LR of the first point (at or before ``p``) with
      ``a >= a0 + rise_frac * rise`` -- where accuracy *starts to rise*.
    * ``max_lr``: LR of the first point after ``base_lr`` at which either
      (a) ``a >= a0 + plateau_frac * rise`` or ``a >= a[p] - se(a[p])`` (within one standard error
      of the best: a tie with the peak) -- the rise has *stopped*, or (b) the raw accuracy drops
      below its running maximum ``r`` (since ``base_lr``) by more than ``max(ragged_frac * rise, se(r))``
      -- it *turned ragged or fell* (a dip within one standard error is noise, not a fall); then
      ``max_lr`` is the LR of the point before the drop. Whichever comes first. A fall right after the first
      rise, at no larger LR (noise: the rise fell back at once, short of the peak), starts the rise again at the next
      point past the fall at or above the start threshold; when none is left, a ``ValueError``.

    Returns ``{"base_lr", "max_lr", "peak_lr", "peak_acc", "start_acc", "peak_stderr"}``.
    """
    lr, raw = _accuracy_points(lrs, accs, rise_frac, plateau_frac)
    if bandwidth == 0:
        a = raw.copy()
    else:
        a = smooth_log_lr(lr, raw, bandwidth if bandwidth is not None else None, min_neighbours=2, log_axis=False)
    a0 = float(a[0])
    p = int(np.argmax(a))
    tol = binomial_stderr(a[p], num_images)
    rise = float(a[p]) - a0
    noise = noise_rise(a0, float(a[p]), len(a), num_images)
    if rise <= max(tol, noise):
        raise ValueError(
            f"validation accuracy never rose above its starting value by more than noise during the accuracy test "
            f"(best {float(a[p]):.3g} against {a0:.3g} at the start; noise alone reaches +{noise:.3g} among "
            f"{len(a)} points of {num_images} images each): widen the range (range_test.max_lr higher), run more "
            "epochs (range_test.num_epochs) or evaluate more images per point (range_test.eval_batches)"
        )
    started = a[: p + 1] >= a0 + rise_frac * rise
    first = b = int(np.argmax(started))
    while True:
        m = _rise_end(lr, a, raw, b, p, a0, rise, tol, num_images, plateau_frac, ragged_frac)
        if lr[m] > lr[b] or (m == p and b == first):  # a start tried again must rise over some LR range
            break
        # the "rise" fell back at once, short of the peak: a noisy point (or two points at LR 0); the next start
        # past the fall is tried (one high point then one low one had stopped a long, real rise)
        later = np.flatnonzero(started[m + 2:])
        if later.size == 0:
            raise ValueError(
                f"validation accuracy rose to {float(raw[first]):.3g} at LR {float(lr[first]):.3g} and fell back at "
                f"once: no rise to read bounds from (its best, {float(a[p]):.3g} at {float(lr[p]):.3g}, is "
                f"{rise:.3g} above the start, {a0:.3g}): run more epochs (range_test.num_epochs), evaluate more "
                "images per point (range_test.eval_batches) or widen the range (range_test.max_lr higher)"
            )
        b = m + 2 + int(later[0])
    return {"base_lr": float(lr[b]), "max_lr": float(lr[m]), "peak_lr": float(lr[p]), "peak_acc": float(a[p]),
            "start_acc": a0, "peak_stderr": tol}


def _rise_end(lr: np.ndarray, a: np.ndarray, raw: np.ndarray, b: int, p: int, a0: float, rise: float, tol: float,
              num_images: Optional[int], plateau_frac: float, ragged_frac: float) -> int:
    """Where the rise that starts at point ``b`` ends (:func:`accuracy_test_bounds`' ``max_lr`` rule): the first
    point at the plateau or within one standard error of the peak ``p``, or the point before the raw accuracy
    drops below its running maximum by more than ``max(ragged_frac * rise, se)``; ``p`` when neither comes first."""
    run_max = raw[b]
    for i in range(b + 1, p + 1):
        if raw[i] < run_max - max(ragged_frac * rise, binomial_stderr(run_max, num_images)):
            return i - 1
        run_max = max(run_max, raw[i])
        if a[i] >= a0 + plateau_frac * rise or a[i] >= a[p] - tol:
            return i
    return p


def noise_rise(start: float, best: float, points: int, num_images: Optional[int]) -> float:
    """How far above the ``start`` accuracy the best of ``points`` accuracies (each on ``num_images`` images) lands
    by noise alone: a one-sided two-proportion test at 5%, Bonferroni-corrected over the points after the first,
    ``z(1 - 0.05 / (points - 1)) * sqrt(2) * se((start + best) / 2)``; 0 without ``num_images`` (exact values).
    On pure binomial noise a rise of one standard error, the rule before, read as a rise in 49-86% of 4,000 draws
    (5-40 points, 128-2,048 images); this rule found bounds in 2.1-4.6% (benchmarks/accuracy_noise.py). Smith's test
    measured at a chance-level plateau (LR 3-6 on the smoke data, 5 points of 128 images: 0.094 to 0.125) returned
    bounds from that noise."""
    if num_images is None:
        return 0.0
    z = NormalDist().inv_cdf(1.0 - 0.05 / max(points - 1, 1))
    return z * math.sqrt(2.0) * binomial_stderr(0.5 * (start + best), num_images)


def _accuracy_points(lrs: Sequence[float], accs: Sequence[float], rise_frac: float,
                     plateau_frac: float) -> Tuple[np.ndarray, np.ndarray]:
    """The checked (lr, accuracy) points of :func:`accuracy_test_bounds`, sorted by LR."""
    lr = as_1d("lrs", lrs)
    acc = as_1d("accs", accs)
    if lr.shape != acc.shape:
        raise ValueError(f"lrs and accs must have the same length, got {lr.size} and {acc.size}")
    if lr.size < 3:
        raise ValueError("the accuracy test needs at least 3 (lr, accuracy) points")
    if not (0.0 < rise_frac < plateau_frac <= 1.0):
        raise ValueError("need 0 < rise_frac < plateau_frac <= 1")
    if not np.all(np.isfinite(acc)):
        raise ValueError("accuracies must be finite")
    order = np.argsort(lr, kind="stable")
    return lr[order], acc[order]
