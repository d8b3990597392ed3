"""Smoothing of a recorded LR range test (numpy only, no torch or Lightning), for two different jobs:

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
  curve (where the loss explodes). Every suggestion of
  :mod:`callbacks.range_test.suggestions` is computed on this curve.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "as_1d",
    "check_pair",
    "running_average",
    "divergence_index",
    "sweep_diverged",
    "DIVERGED_RISE",
    "default_bandwidth",
    "smooth_log_lr",
    "log_lr_slope",
]


def as_1d(name: str, values: Sequence[float]) -> np.ndarray:
    """``values`` as a flat float64 array; an empty one is refused, naming ``name``."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def check_pair(
    lrs: Sequence[float], losses: Sequence[float], positive: bool = True
) -> Tuple[np.ndarray, np.ndarray]:
    """Two equally long arrays, LRs finite and > 0 (>= 0 with ``positive=False``)."""
    lr = as_1d("lrs", lrs)
    loss = as_1d("losses", losses)
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
    x = as_1d("losses", losses)
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


#: a sweep that ran to its end without a stop counts as diverged when its loss rose to this multiple of its minimum
DIVERGED_RISE = 2.0


def sweep_diverged(stop: Optional[int], rise: Optional[float]) -> bool:
    """Whether a finished sweep's loss blew up: its stop rule fired (``stop``, :func:`divergence_index`), or it ran
    to its end and its loss rose to :data:`DIVERGED_RISE` x its minimum or more (``rise``; ``None``: no positive
    minimum to compare with). Otherwise the sweep saw no upper limit for the LR."""
    return stop is not None or (rise is not None and rise >= DIVERGED_RISE)


# ---------------------------------------------------------------------------
# zero-lag smoothing on the log-LR axis
# ---------------------------------------------------------------------------
def default_bandwidth(log_lrs: Sequence[float]) -> float:
    """Default Gaussian bandwidth (std, in decades) for :func:`smooth_log_lr`:
    3 % of the swept span (0.18 decade for 1e-5..10), but at least 3 times the
    median spacing between points, so a short sweep still averages several points."""
    x = as_1d("log_lrs", log_lrs)
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
    lr, y = check_pair(lrs, losses, positive=log_axis)
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
    lr, y = check_pair(lrs, smoothed)
    if lr.size < 2:
        return np.zeros_like(y)
    return np.gradient(y, np.log10(lr))
