"""Pure (numpy-only) analysis of a recorded learning-rate range test.

Everything here works on plain sequences of learning rates and losses (or
accuracies); nothing touches torch or Lightning, so it can be tested on
synthetic curves with known answers.

Two kinds of smoothing are used, for two different jobs:

* :func:`running_average` -- the bias-corrected exponential running average
  (beta 0.98 by default) used *during* the sweep to decide when to stop
  (:func:`divergence_index`). It is causal and therefore lags: with beta 0.98
  its centre of mass sits ~49 points behind the current step. That lag is
  harmless for a stop rule but it shifts every feature of the curve to the
  right (to higher learning rates), so it is **not** used for suggestions.

* :func:`smooth_log_lr` -- zero-lag, symmetric smoothing of the raw losses on
  the log10-LR axis (a Gaussian-weighted local-linear fit, i.e. a LOESS with a
  Gaussian kernel). A symmetric dip stays centred; the local-linear form also
  avoids the flattening that a plain moving average suffers at the ends of the
  curve (where the loss explodes). All suggestions are computed on this curve.

Suggestions (see the functions for the exact definitions):

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

Smith's accuracy test (Smith 2015, "Cyclical Learning Rates for Training
Neural Networks", sec. 3.3) is analysed by :func:`accuracy_test_bounds`.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "SUGGESTIONS",
    "running_average",
    "divergence_index",
    "default_bandwidth",
    "smooth_log_lr",
    "log_lr_slope",
    "suggest_min_div10",
    "suggest_steepest",
    "suggest_valley",
    "valley_stretch",
    "compute_suggestions",
    "binomial_stderr",
    "accuracy_test_bounds",
]

#: Names of the loss-based suggestions, in reporting order.
SUGGESTIONS: Tuple[str, ...] = ("min_div10", "steepest", "valley", "loss_min")


def _as_1d(name: str, values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _check_pair(
    lrs: Sequence[float], losses: Sequence[float], positive: bool = True
) -> Tuple[np.ndarray, np.ndarray]:
    lr = _as_1d("lrs", lrs)
    loss = _as_1d("losses", losses)
    if lr.shape != loss.shape:
        raise ValueError(f"lrs and losses must have the same length, got {lr.size} and {loss.size}")
    if not np.all(np.isfinite(lr)) or np.any(lr <= 0 if positive else lr < 0):
        raise ValueError(f"learning rates must be finite and {'> 0' if positive else '>= 0'}")
    return lr, loss


# ---------------------------------------------------------------------------
# running average (causal, for the stop rule)
# ---------------------------------------------------------------------------
def running_average(losses: Sequence[float], beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential running average.

    ``avg_t = beta * avg_{t-1} + (1 - beta) * loss_t`` with ``avg_{-1} = 0``, and
    the reported value is ``avg_t / (1 - beta ** (t + 1))``. The correction makes
    the average an exact weighted mean of the points seen so far, so the first
    smoothed value equals the first raw value (no pull towards zero).

    A non-finite loss makes this and every later value non-finite.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"smooth_beta must be in [0, 1), got {beta}")
    x = _as_1d("losses", losses)
    out = np.empty_like(x)
    avg = 0.0
    for t, value in enumerate(x):
        avg = beta * avg + (1.0 - beta) * value
        out[t] = avg / (1.0 - beta ** (t + 1))
    if beta == 0.0:
        out[:] = x
    return out


def divergence_index(
    losses: Sequence[float], beta: float = 0.98, diverge_factor: float = 4.0
) -> Optional[int]:
    """First index at which the sweep counts as diverged, or ``None``.

    A point diverges when its loss (or running average) is not finite, or when
    the bias-corrected running average exceeds ``diverge_factor`` times the best
    (lowest) running average seen so far. The best value is only meaningful for
    positive losses; while the best is <= 0 only non-finite values stop the sweep.
    """
    if diverge_factor <= 1.0:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor}")
    smoothed = running_average(losses, beta)
    best = math.inf
    for i, s in enumerate(smoothed):
        if not math.isfinite(s):
            return i
        if 0.0 < best < math.inf and s > diverge_factor * best:
            return i
        best = min(best, s)
    return None


# ---------------------------------------------------------------------------
# zero-lag smoothing on the log-LR axis
# ---------------------------------------------------------------------------
def default_bandwidth(log_lrs: Sequence[float]) -> float:
    """Default Gaussian bandwidth (std, in decades) for :func:`smooth_log_lr`:
    3 % of the swept span (0.18 decade for 1e-5..10), but at least 3 times the
    median spacing between points, so a short sweep still averages several points."""
    x = _as_1d("log_lrs", log_lrs)
    span = float(x.max() - x.min())
    spacing = float(np.median(np.abs(np.diff(x)))) if x.size > 1 else 0.0
    bw = max(0.03 * span, 3.0 * spacing)
    return bw if bw > 0 else 1.0


def smooth_log_lr(
    lrs: Sequence[float],
    losses: Sequence[float],
    bandwidth: Optional[float] = None,
    min_neighbours: int = 4,
    log_axis: bool = True,
) -> np.ndarray:
    """Zero-lag smoothing of ``losses`` against ``log10(lrs)``.

    At every point ``x_i`` a straight line is fitted to all finite points by
    weighted least squares with Gaussian weights ``exp(-0.5 ((x_j - x_i) / h_i)^2)``
    and its value at ``x_i`` is returned (Gaussian-kernel local-linear regression).
    The kernel is symmetric, so the curve is not shifted (no lag), and the local
    line keeps the ends of the curve unbiased to first order.

    ``h_i = max(bandwidth, distance from x_i to its min_neighbours-th nearest
    point)``: where points are sparse on the log axis (the low end of a linear
    sweep) the window widens so it always holds a few points.
    ``bandwidth=0`` returns the raw values (finite ones; non-finite ones are
    filled by the fit). ``log_axis=False`` smooths against the raw LR instead.
    """
    lr, y = _check_pair(lrs, losses, positive=log_axis)
    x = np.log10(lr) if log_axis else lr.copy()
    finite = np.isfinite(y)
    if not finite.any():
        raise ValueError("no finite loss values to smooth")
    if bandwidth is None:
        bandwidth = default_bandwidth(x)
    if bandwidth < 0:
        raise ValueError(f"bandwidth must be >= 0, got {bandwidth}")
    xf, yf = x[finite], y[finite]
    out = np.empty_like(y)
    k = min(max(int(min_neighbours), 1), xf.size - 1)
    for i, xi in enumerate(x):
        if bandwidth == 0 and finite[i]:
            out[i] = y[i]
            continue
        d = xf - xi
        h = float(bandwidth)
        if k > 0:
            h = max(h, float(np.partition(np.abs(d), k)[k]))
        if h <= 0:
            out[i] = float(np.mean(yf))
            continue
        w = np.exp(-0.5 * (d / h) ** 2)
        sw = w.sum()
        mx = (w * d).sum() / sw
        my = (w * yf).sum() / sw
        var = (w * (d - mx) ** 2).sum() / sw
        if var <= 1e-12 * h * h:
            out[i] = my
        else:
            slope = (w * (d - mx) * (yf - my)).sum() / sw / var
            out[i] = my - slope * mx  # value of the local line at d = 0
    return out


def log_lr_slope(lrs: Sequence[float], smoothed: Sequence[float]) -> np.ndarray:
    """d(smoothed loss) / d(log10 LR) by central differences (one-sided at the ends)."""
    lr, y = _check_pair(lrs, smoothed)
    if lr.size < 2:
        return np.zeros_like(y)
    return np.gradient(y, np.log10(lr))


# ---------------------------------------------------------------------------
# suggestions (all take the zero-lag smoothed curve)
# ---------------------------------------------------------------------------
def suggest_loss_min(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """The LR at the minimum of the smoothed loss: the largest LR that still lowers the loss in a short sweep,
    which is where Smith & Topin (2017) put a one-cycle peak (the cycle's warm-up keeps it stable)."""
    lr, y = _check_pair(lrs, smoothed)
    return float(lr[int(np.nanargmin(y))])


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
    lr, y = _check_pair(lrs, smoothed)
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
    lr, y = _check_pair(lrs, smoothed)
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
    lr, _ = _check_pair(lrs, smoothed)
    s, e = valley_stretch(lrs, smoothed, steep_frac, max_gap)
    xs, xe = math.log10(lr[s]), math.log10(lr[e])
    return float(10.0 ** (xs + position * (xe - xs)))


def compute_suggestions(
    lrs: Sequence[float],
    losses: Sequence[float],
    bandwidth: Optional[float] = None,
) -> Tuple[Dict[str, float], np.ndarray]:
    """Smooth the raw ``losses`` with :func:`smooth_log_lr` and return
    ``({name: lr for name in SUGGESTIONS}, smoothed)``. Non-finite losses (the
    blow-up at the end of a sweep) are ignored by the smoother. ``bandwidth=None``
    uses :func:`default_bandwidth`; ``steepest`` skips the first two bandwidths. Every suggestion is <= the
    LR of the smoothed-loss minimum."""
    lr, loss = _check_pair(lrs, losses)
    if np.isfinite(loss).sum() < 3:
        raise ValueError("need at least 3 finite loss values to make suggestions")
    if bandwidth is None:
        bandwidth = default_bandwidth(np.log10(lr))
    smoothed = smooth_log_lr(lr, loss, bandwidth)
    loss_min = suggest_loss_min(lr, smoothed)
    out = {
        "min_div10": suggest_min_div10(lr, smoothed),
        "steepest": suggest_steepest(lr, smoothed, skip_start=2.0 * bandwidth),
        "valley": suggest_valley(lr, smoothed),
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

    * ``a0 = a[0]``, ``p = argmax(a)``, ``rise = a[p] - a0``. If ``rise <= se(a[p])`` the
      accuracy never rose beyond noise: a ``ValueError`` says to widen the LR range.
    * ``base_lr``: LR of the first point (at or before ``p``) with
      ``a >= a0 + rise_frac * rise`` -- where accuracy *starts to rise*.
    * ``max_lr``: LR of the first point after ``base_lr`` at which either
      (a) ``a >= a0 + plateau_frac * rise`` or ``a >= a[p] - se(a[p])`` (within one standard error
      of the best: a tie with the peak) -- the rise has *stopped*, or (b) the raw accuracy drops
      below its running maximum ``r`` (since ``base_lr``) by more than ``max(ragged_frac * rise, se(r))``
      -- it *turned ragged or fell* (a dip within one standard error is noise, not a fall); then
      ``max_lr`` is the LR of the point before the drop. Whichever comes first.

    Returns ``{"base_lr", "max_lr", "peak_lr", "peak_acc", "start_acc", "peak_stderr"}``.
    """
    lr = _as_1d("lrs", lrs)
    acc = _as_1d("accs", accs)
    if lr.shape != acc.shape:
        raise ValueError(f"lrs and accs must have the same length, got {lr.size} and {acc.size}")
    if lr.size < 3:
        raise ValueError("the accuracy test needs at least 3 (lr, accuracy) points")
    if not (0.0 < rise_frac < plateau_frac <= 1.0):
        raise ValueError("need 0 < rise_frac < plateau_frac <= 1")
    if not np.all(np.isfinite(acc)):
        raise ValueError("accuracies must be finite")
    order = np.argsort(lr, kind="stable")
    lr, raw = lr[order], acc[order]
    if bandwidth == 0:
        a = raw.copy()
    else:
        a = smooth_log_lr(lr, raw, bandwidth if bandwidth is not None else None, min_neighbours=2, log_axis=False)
    a0 = float(a[0])
    p = int(np.argmax(a))
    tol = binomial_stderr(a[p], num_images)
    rise = float(a[p]) - a0
    if rise <= tol:
        raise ValueError(
            "validation accuracy never rose above its starting value (by more than one standard error) during "
            "the accuracy test: widen the range (max_lr higher), run more epochs (num_epochs) or evaluate more "
            "images per point (eval_batches)"
        )
    b = int(np.argmax(a[: p + 1] >= a0 + rise_frac * rise))
    m = p
    run_max = raw[b]
    for i in range(b + 1, p + 1):
        if raw[i] < run_max - max(ragged_frac * rise, binomial_stderr(run_max, num_images)):
            m = i - 1
            break
        run_max = max(run_max, raw[i])
        if a[i] >= a0 + plateau_frac * rise or a[i] >= a[p] - tol:
            m = i
            break
    return {
        "base_lr": float(lr[b]),
        "max_lr": float(lr[m]),
        "peak_lr": float(lr[p]),
        "peak_acc": float(a[p]),
        "start_acc": a0,
        "peak_stderr": tol,
    }
