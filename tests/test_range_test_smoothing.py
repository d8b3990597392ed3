"""callbacks.range_test.smoothing: the stop rule's running average and the zero-lag smoother on synthetic curves
with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from callbacks.range_test.smoothing import divergence_index, running_average, smooth_log_lr

X = np.linspace(-5.0, 1.0, 241)  # log10 LR, 0.025 decade spacing, 1e-5 .. 10
LRS = 10.0**X


def _weighted_mean_oracle(x: np.ndarray, beta: float) -> np.ndarray:
    """Bias-corrected EMA written as an explicit weighted mean of the points so far."""
    out = []
    for t in range(len(x)):
        w = (1 - beta) * beta ** np.arange(t, -1, -1, dtype=np.float64)
        out.append(float((w * x[: t + 1]).sum() / w.sum()))
    return np.array(out)


# ---------------------------------------------------------------------------- running average / stop rule
def test_running_average_bias_correction_from_first_point():
    rng = np.random.default_rng(0)
    x = 2.0 + rng.normal(size=60)
    ra = running_average(x, 0.98)
    assert ra[0] == pytest.approx(x[0], rel=1e-12)  # no pull towards zero at the first point
    np.testing.assert_allclose(ra, _weighted_mean_oracle(x, 0.98), rtol=1e-12)
    np.testing.assert_allclose(running_average(np.full(30, 3.7), 0.98), 3.7, rtol=1e-12)  # unbiased on constants
    with pytest.raises(ValueError, match="smooth_beta"):
        running_average(x, 1.0)


def test_divergence_index_jumps_and_nan():
    beta = 0.98
    base = np.ones(50)
    # a jump to 100: the corrected average at the jump is (0.98 - 0.98**51 + 2) / (1 - 0.98**51) ~ 4.08 > 4
    assert divergence_index(np.r_[base, np.full(10, 100.0)], beta, 4.0) == 50
    # a jump to 10: oracle = first index where the explicit weighted mean exceeds 4x the best value so far
    losses = np.r_[base, np.full(100, 10.0)]
    ref = _weighted_mean_oracle(losses, beta)
    expected = next(i for i in range(1, len(ref)) if ref[i] > 4.0 * ref[:i].min())
    assert expected > 50
    assert divergence_index(losses, beta, 4.0) == expected
    # with a factor of 8 it stops later; with no blow-up it never stops
    assert divergence_index(losses, beta, 8.0) > expected
    assert divergence_index(base, beta, 4.0) is None
    # a NaN stops the sweep at once
    nan = np.r_[np.ones(7), np.nan, np.ones(5)]
    assert divergence_index(nan, beta, 4.0) == 7
    with pytest.raises(ValueError, match="diverge_factor"):
        divergence_index(base, beta, 1.0)


# ---------------------------------------------------------------------------- zero-lag smoothing
def test_zero_lag_smoothing_keeps_a_symmetric_dip_centred():
    c = 100  # X[100] = -2.5
    dip = 2.0 - np.exp(-((X - X[c]) ** 2) / (2 * 0.3**2))
    rng = np.random.default_rng(1)
    half = rng.normal(scale=0.05, size=c)
    noise = np.r_[half, 0.0, half[::-1], np.zeros(len(X) - 2 * c - 1)]  # symmetric about c
    y = dip + noise
    sm = smooth_log_lr(LRS, y)
    assert int(np.argmin(sm)) == c
    # symmetric around c (up to rounding) on the fully covered part
    np.testing.assert_allclose(sm[c - 60 : c], sm[c + 60 : c : -1], atol=1e-9)
    # the causal running average drags the dip to the right by many points: the lag the smoother avoids
    assert int(np.argmin(running_average(y, 0.98))) > c + 10
    # with non-symmetric noise the minimum stays within a couple of points
    y2 = dip + np.random.default_rng(2).normal(scale=0.05, size=len(X))
    assert abs(int(np.argmin(smooth_log_lr(LRS, y2))) - c) <= 3


def test_smoothing_ignores_non_finite_and_is_exact_on_lines():
    y = 3.0 - 0.5 * X  # a straight line: local-linear smoothing reproduces it, ends included
    np.testing.assert_allclose(smooth_log_lr(LRS, y), y, atol=1e-9)
    y_bad = y.copy()
    y_bad[-5:] = np.nan
    y_bad[-3] = np.inf
    sm = smooth_log_lr(LRS, y_bad)
    assert np.all(np.isfinite(sm))
    np.testing.assert_allclose(sm, y, atol=1e-9)  # filled by the fit
    np.testing.assert_allclose(smooth_log_lr(LRS, y_bad, bandwidth=0)[:-5], y[:-5])
