"""callbacks.range_test.suggestions: every suggestion rule and the accuracy test's bounds on synthetic curves with
known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from callbacks.range_test.smoothing import log_lr_slope, smooth_log_lr
from callbacks.range_test.suggestions import (
    accuracy_test_bounds,
    binomial_stderr,
    compute_suggestions,
    floor_start,
    relapse_index,
    suggest_min_div10,
    suggest_steepest,
    suggest_valley,
    valley_stretch,
)

X = np.linspace(-5.0, 1.0, 241)  # log10 LR, 0.025 decade spacing, 1e-5 .. 10
LRS = 10.0**X


# ---------------------------------------------------------------------------- suggestions with known answers
def test_min_div10_one_decade_below_the_minimum():
    y = 1.0 + (X - (-1.0)) ** 2  # minimum exactly at X = -1 (a grid point)
    i = int(np.argmin(np.abs(X + 1.0)))
    assert suggest_min_div10(LRS, y) == pytest.approx(LRS[i] / 10)
    # through the smoother with noise: within 0.1 decade of 10**-2
    rng = np.random.default_rng(3)
    noisy = y + rng.normal(scale=0.05, size=len(X))
    sugg, sm = compute_suggestions(LRS, noisy)
    assert abs(math.log10(sugg["min_div10"]) - (-2.0)) < 0.1


def test_steepest_against_log_lr_before_the_minimum():
    # tanh descent centred at x = -2 (slope -1/0.4 = -2.5 per decade), minimum later, then a blow-up that contains a
    # steeper *fall* (-10/decade) above the minimum that must not be picked
    y = 2.0 - np.tanh((X + 2.0) / 0.4)
    y = y + 3.0 * np.clip(X + 0.5, 0, None) ** 2
    drop = np.where(X > 0.3, -0.5, 0.0) * np.clip((X - 0.3) / 0.05, 0, 1)
    y = y + drop
    assert np.min(log_lr_slope(LRS, y)[X > 0.25]) < -5  # the trap is steeper than the true descent
    assert y[X > 0.3].min() > y.min()  # ... and above the minimum
    assert math.log10(suggest_steepest(LRS, y)) == pytest.approx(-2.0, abs=0.03)
    # the slope against raw LR (dL/dlr = dL/dlog10lr / (lr ln 10)) would point at a much smaller LR
    raw_slope = np.gradient(y, LRS)
    assert math.log10(LRS[int(np.argmin(raw_slope[: int(np.argmin(y)) + 1]))]) < -2.1
    # noisy version through the zero-lag smoother stays close
    noisy = y + np.random.default_rng(4).normal(scale=0.03, size=len(X))
    sugg, _ = compute_suggestions(LRS, noisy)
    assert math.log10(sugg["steepest"]) == pytest.approx(-2.0, abs=0.15)


def test_steepest_ignores_a_start_up_transient():
    y = 2.0 - 0.5 * np.tanh((X + 1.5) / 0.3) + np.exp((X - 0.5) / 0.1)
    y[0] += 1.0  # the first losses are high (start-up transient): steep fall at the very edge
    y[1] += 0.5
    sm = smooth_log_lr(LRS, y)
    assert log_lr_slope(LRS, sm)[0] < log_lr_slope(LRS, sm)[X > -2].min()  # the edge is the steepest raw slope
    assert math.log10(suggest_steepest(LRS, sm)) == pytest.approx(-5.0)
    sugg, _ = compute_suggestions(LRS, y)
    assert math.log10(sugg["steepest"]) == pytest.approx(-1.5, abs=0.05)


def _two_descents(bump: bool = False) -> np.ndarray:
    """Short steep descent A over [-4, -3.5] (slope -2), plateau, long gentler descent B over [-2.5, -0.5]
    (slope -0.5, >= 10% of the steepest), minimum at -0.5, then a rise."""
    y = np.full_like(X, 3.0)
    y -= 2.0 * np.clip(X + 4.0, 0, 0.5)
    y -= 0.5 * np.clip(X + 2.5, 0, 2.0)
    y += 2.0 * np.clip(X + 0.5, 0, None)
    if bump:  # a 0.1-decade shoulder inside B: flat, then continue downhill
        y = np.where((X > -1.8) & (X <= -1.7), y[np.argmin(np.abs(X + 1.8))], y)
        y = np.where(X > -1.7, y + 0.5 * 0.1, y)
    return y


def test_valley_is_two_thirds_down_the_longest_steep_stretch():
    y = _two_descents()
    s, e = valley_stretch(LRS, y)
    assert X[s] == pytest.approx(-2.5, abs=0.03) and X[e] == pytest.approx(-0.5, abs=0.03)
    expected = -2.5 + 2.0 / 3.0 * 2.0
    assert math.log10(suggest_valley(LRS, y)) == pytest.approx(expected, abs=0.03)
    # steepest picks the short steep descent A instead: the two suggestions answer different questions
    assert -4.0 <= math.log10(suggest_steepest(LRS, y)) <= -3.5
    # a short flat shoulder inside B does not cut it in two
    yb = _two_descents(bump=True)
    assert np.any(log_lr_slope(LRS, yb)[(X > -1.8) & (X < -1.7)] == 0)
    s2, e2 = valley_stretch(LRS, yb)
    assert X[s2] == pytest.approx(-2.5, abs=0.03) and X[e2] == pytest.approx(-0.5, abs=0.06)
    # but without merging (max_gap=0) the longest piece is shorter
    s3, e3 = valley_stretch(LRS, yb, max_gap=0.0)
    assert X[e3] - X[s3] < 1.5
    # through the smoother (which rounds the kinks at both ends of B, shortening it a little)
    sugg, _ = compute_suggestions(LRS, y + np.random.default_rng(5).normal(scale=0.02, size=len(X)))
    assert math.log10(sugg["valley"]) == pytest.approx(expected, abs=0.25)
    assert -2.5 < math.log10(sugg["valley"]) < -0.5


def test_valley_length_is_measured_in_decades_not_points():
    """A linear sweep is dense at high LR: descent B over [-2, -1] (1 decade, ~36 points of a linear grid) must beat
    descent C over [-0.5, 0] (half a decade but ~270 points), on a linear and an exponential grid alike."""
    def curve(x):
        y = 3.0 - np.clip(x + 2.0, 0, 1.0) - np.clip(x + 0.5, 0, 0.5)
        return y + 4.0 * np.clip(x, 0, None)

    lin = np.linspace(1e-2, 10.0, 4000)
    geo = np.geomspace(1e-2, 10.0, 241)
    for grid in (lin, geo):
        y = curve(np.log10(grid))
        s, e = valley_stretch(grid, y)
        assert math.log10(grid[s]) == pytest.approx(-2.0, abs=0.02)
        assert math.log10(grid[e]) == pytest.approx(-1.0, abs=0.02)
        assert math.log10(suggest_valley(grid, y)) == pytest.approx(-2.0 + 2.0 / 3.0, abs=0.02)
        assert math.log10(suggest_min_div10(grid, y)) == pytest.approx(-1.0, abs=0.01)


# ---------------------------------------------------------------------------- Smith 2015 accuracy test
def _acc_curve(lr: np.ndarray) -> np.ndarray:
    """0.1 until lr=0.1, linear rise to 0.8 at lr=0.5, then falling."""
    a = np.where(lr < 0.1, 0.1, 0.1 + 0.7 * (lr - 0.1) / 0.4)
    return np.where(lr > 0.5, 0.8 - 1.0 * (lr - 0.5), a)


def test_accuracy_bounds_on_constructed_curve():
    lr = np.round(np.linspace(0.0, 1.0, 101), 10)
    res = accuracy_test_bounds(lr, _acc_curve(lr))
    # base: a >= 0.1 + 0.1 * 0.7 = 0.17  -> lr >= 0.14 ; max: a >= 0.1 + 0.9 * 0.7 = 0.73 -> lr >= 0.46
    assert res["base_lr"] == pytest.approx(0.14)
    assert res["max_lr"] == pytest.approx(0.46)
    assert res["peak_lr"] == pytest.approx(0.5)
    assert res["start_acc"] == pytest.approx(0.1) and res["peak_acc"] == pytest.approx(0.8)


def test_accuracy_bounds_ragged_and_no_rise():
    lr = np.round(np.linspace(0.0, 1.0, 101), 10)
    acc = _acc_curve(lr)
    acc[lr >= 0.30] -= 0.3  # accuracy collapses at 0.30 (drop 0.3 > 25% of the 0.7 rise) ...
    acc[lr >= 0.45] += 0.5  # ... and later reaches a higher peak: the ragged point comes first
    res = accuracy_test_bounds(lr, acc)
    assert res["max_lr"] == pytest.approx(0.29)
    assert res["peak_lr"] > 0.45
    with pytest.raises(ValueError, match="never rose"):
        accuracy_test_bounds(lr, 0.5 - 0.1 * lr)
    # unsorted input is sorted first; smoothing on the linear LR axis keeps the answer close on a noisy curve
    perm = np.random.default_rng(6).permutation(len(lr))
    assert accuracy_test_bounds(lr[perm], _acc_curve(lr)[perm])["max_lr"] == pytest.approx(0.46)
    noisy = _acc_curve(lr) + np.random.default_rng(7).normal(scale=0.01, size=len(lr))
    res2 = accuracy_test_bounds(lr, noisy, bandwidth=None)
    assert res2["base_lr"] == pytest.approx(0.14, abs=0.04) and res2["max_lr"] == pytest.approx(0.46, abs=0.05)


def test_loss_min_is_the_lr_of_the_smoothed_minimum_and_ten_times_min_div10():
    import numpy as np

    from callbacks.range_test.suggestions import compute_suggestions

    lrs = np.logspace(-5, 1, 120)
    x = np.log10(lrs)
    losses = 2.3 - 0.8 / (1 + np.exp(-(x + 1.5) * 3)) + 0.6 * np.exp((x - 0.5) * 3)  # minimum near 10**-0.2
    sugg, smoothed = compute_suggestions(lrs, losses)
    assert sugg["loss_min"] == pytest.approx(lrs[int(np.argmin(smoothed))])
    assert abs(np.log10(sugg["loss_min"]) - x[int(np.argmin(losses))]) < 0.15
    assert sugg["min_div10"] == pytest.approx(sugg["loss_min"] / 10)


# ---------------------------------------------------------------------------- no suggestion past the minimum
def _late_bump() -> np.ndarray:
    """Descent over [-3, -2] (1 decade) to the minimum 2.0 at -2, a bump up to 3.0 at -1.5, then a *longer*
    gentle descent over [-1.5, 0.5] (2 decades, steep enough to count) that stays above the minimum, then a
    blow-up."""
    y = 3.0 - np.clip(X + 3.0, 0, 1.0)
    y = y + 2.0 * np.clip(X + 2.0, 0, 0.5)
    y = y - 0.4 * np.clip(X + 1.5, 0, 2.0)
    return y + 5.0 * np.clip(X - 0.5, 0, None) ** 2


def test_no_suggestion_lies_past_the_minimum_with_a_late_bump():
    y = _late_bump()
    i_min = int(np.argmin(y))
    assert X[i_min] == pytest.approx(-2.0, abs=0.03) and y[X > -1.5].min() > y[i_min]
    # the descent after the minimum is the longest steep one on the whole curve: on its own it is 2 decades long,
    # and its slope (-0.4/decade) passes the 10% steepness rule of the real descent (-1/decade)
    tail = X >= -1.5
    s_all, e_all = valley_stretch(LRS[tail], y[tail])
    assert X[tail][e_all] - X[tail][s_all] > 1.9
    assert log_lr_slope(LRS, y)[(X > -1.4) & (X < 0.4)].max() < 0.1 * log_lr_slope(LRS, y)[X < -2.05].min()
    s, e = valley_stretch(LRS, y)
    assert X[s] == pytest.approx(-3.0, abs=0.03) and X[e] == pytest.approx(-2.0, abs=0.03)
    assert math.log10(suggest_valley(LRS, y)) == pytest.approx(-3.0 + 2.0 / 3.0, abs=0.03)
    # through the smoother, with noise: every suggestion at or below the LR of the smoothed minimum
    for seed in range(5):
        noisy = y + np.random.default_rng(seed).normal(scale=0.03, size=len(X))
        sugg, sm = compute_suggestions(LRS, noisy)
        lr_min = LRS[int(np.argmin(sm))]
        assert sugg["loss_min"] == lr_min
        assert all(v <= lr_min for v in sugg.values()), sugg
        assert math.log10(sugg["valley"]) < -2.0 + 0.1


def test_valley_ignores_a_tiny_early_dip():
    """A shallow dip at the start (drop 0.18, 1.2 decades long -- longer than the real descent, and steep enough
    to count) then back up; the real descent drops 1.0 over 0.8 decades to the minimum."""
    y = 3.0 - 0.18 * np.clip((X + 5.0) / 1.2, 0, 1) + 0.18 * np.clip((X + 3.8) / 0.3, 0, 1)
    y = y - 1.0 * np.clip((X + 2.0) / 0.8, 0, 1) + 3.0 * np.clip(X + 1.2, 0, None) ** 2
    slope = log_lr_slope(LRS, y)
    assert slope[(X > -4.9) & (X < -3.9)].max() <= 0.1 * slope.min()  # the dip is "steep" by the 10% rule
    s0, e0 = valley_stretch(LRS, y, min_drop_frac=0.0)  # without the drop filter the dip wins on length
    assert X[s0] == pytest.approx(-5.0, abs=0.03)
    s, e = valley_stretch(LRS, y)
    assert X[s] == pytest.approx(-2.0, abs=0.03) and X[e] == pytest.approx(-1.2, abs=0.03)
    assert math.log10(suggest_valley(LRS, y)) == pytest.approx(-2.0 + 2.0 / 3.0 * 0.8, abs=0.03)
    sugg, _ = compute_suggestions(LRS, y + np.random.default_rng(8).normal(scale=0.01, size=len(X)))
    assert -2.0 < math.log10(sugg["valley"]) < -1.2


# ---------------------------------------------------------------------------- accuracy test: binomial ties
def test_binomial_stderr():
    assert binomial_stderr(0.5, 100) == pytest.approx(0.05)
    assert binomial_stderr(0.9, 400) == pytest.approx(math.sqrt(0.09 / 400))
    assert binomial_stderr(0.7, None) == 0.0
    with pytest.raises(ValueError, match=">= 1"):
        binomial_stderr(0.5, 0)


def _noisy_ramp() -> tuple[np.ndarray, np.ndarray]:
    """0.30 until lr 0.2, linear rise to 0.50 at lr 0.6, then flat; one noise dip of 0.055 at lr 0.35 (more than
    25% of the 0.2 rise, less than one standard error on 64 images)."""
    lr = np.round(np.linspace(0.0, 1.0, 21), 10)
    acc = np.clip(0.30 + 0.2 * (lr - 0.2) / 0.4, 0.30, 0.50)
    acc[lr == 0.35] = 0.35 - 0.055
    return lr, acc


def test_accuracy_noise_dip_within_one_stderr_is_not_a_fall():
    lr, acc = _noisy_ramp()
    assert 0.055 > 0.25 * 0.2 and 0.055 < binomial_stderr(0.35, 64)
    # exact accuracies (num_images None): the dip reads as "ragged" and max_lr stops before it
    assert accuracy_test_bounds(lr, acc)["max_lr"] == pytest.approx(0.30)
    # measured on 64 images: the whole 0.2 rise is within what noise gives the best of 21 points (+0.243)
    with pytest.raises(ValueError, match=r"noise alone reaches \+0.243 among 21 points of 64 images each"):
        accuracy_test_bounds(lr, acc, num_images=64)
    # 5 of its points, on 64 images: the rise (0.22) beats noise (+0.195 among 5), the dip (0.055) is within one
    # s.e. (0.060): noise, not a fall; max_lr = first point within one s.e. of the best
    five = [0.0, 0.3, 0.35, 0.5, 0.61]
    res = accuracy_test_bounds(five, [0.30, 0.35, 0.295, 0.47, 0.52], num_images=64)
    assert res["max_lr"] == pytest.approx(0.50) and res["peak_stderr"] == pytest.approx(binomial_stderr(0.52, 64))
    assert res["base_lr"] == pytest.approx(0.30)  # 0.30 + 10% of the rise = 0.322 -> first at lr 0.3 (0.35)
    # a real fall (0.125: larger than both thresholds) still stops it, even before a later, higher peak
    fell = acc.copy()
    fell[lr >= 0.45] -= 0.15
    fell[lr >= 0.7] += 0.30
    assert accuracy_test_bounds(lr, fell, num_images=64)["max_lr"] == pytest.approx(0.40)
    # many images: one s.e. is tiny, the 90%-of-the-rise rule decides again (0.48 -> lr 0.6)
    assert accuracy_test_bounds(lr, np.clip(0.30 + 0.2 * (lr - 0.2) / 0.4, 0.30, 0.50),
                                num_images=100_000)["max_lr"] == pytest.approx(0.60)


def test_accuracy_rise_within_noise_is_rejected():
    lr = np.linspace(0.0, 1.0, 11)
    acc = 0.30 + 0.02 * np.sin(lr * 7)
    assert accuracy_test_bounds(lr, acc)["peak_acc"] > 0.30  # exact: a (tiny) rise
    with pytest.raises(ValueError, match=r"by more than noise .*best 0.32 against 0.3 at the start; noise alone "
                                         r"reaches \+0.211 among 11 points of 64 images each"):
        accuracy_test_bounds(lr, acc, num_images=64)


def test_a_rise_that_falls_back_at_once_starts_again_past_the_fall_or_gives_no_bounds():
    """The smoke data at 512 images, a 32-step ramp from 0: after one step at LR 0 (BatchNorm statistics moved)
    accuracy read 0.098 against 0.074, then 0.070; the rule took that as a rise and its fall, and returned base_lr =
    max_lr = 0, which train.py then refused as "not above base_lr=0". Then it said it found no rise; but one's own
    images (2026-12-03: 0.40 to 0.63 over a 60-point ramp, one high point then one low one at its start) stopped
    there too, and so did 14-20% of simulated real rises (benchmarks/accuracy_noise.py). Now the rise starts again
    at the next point past the fall; only when none is left is it an error."""
    lr = [0.0, 0.0, 0.032, 0.065, 0.097, 0.129, 0.161, 0.194, 0.226, 0.258]
    acc = [0.074, 0.098, 0.070, 0.094, 0.113, 0.102, 0.113, 0.074, 0.074, 0.176]
    res = accuracy_test_bounds(lr, acc, num_images=256)  # past the fall: from 0.094 at 0.065 to 0.113 at 0.161
    assert res["base_lr"] == pytest.approx(0.065) and res["max_lr"] == pytest.approx(0.161)
    clean = [0.074, 0.074, 0.080, 0.100, 0.130, 0.160, 0.175, 0.176, 0.170, 0.150]
    res = accuracy_test_bounds(lr, clean, num_images=256)
    assert 0 < res["base_lr"] < res["max_lr"]
    # every start falls back at once, the last one is the peak itself: no LR range to read bounds from
    blips = [0.10, 0.10, 0.25, 0.10, 0.10, 0.26, 0.10, 0.10, 0.10, 0.27]
    with pytest.raises(ValueError, match=r"rose to 0.25 at LR 0.032 and fell back at once: no rise to read bounds"):
        accuracy_test_bounds(lr, blips, num_images=2048)
    # a long rise with one high point and one low one at its start (the own-images case, drawn): bounds on the rise
    ramp = np.linspace(0.0, 1.0, 41)
    long_rise = 0.40 + 0.22 * np.clip(ramp / 0.8, 0.0, 1.0)
    long_rise[2], long_rise[3] = 0.50, 0.33
    res = accuracy_test_bounds(ramp, long_rise, num_images=240)
    assert 0.075 <= res["base_lr"] <= 0.2 and 0.3 <= res["max_lr"] <= 0.8


def test_the_rules_ignore_the_curve_after_it_relapses_above_its_start():
    """Issue 20's failure, drawn: the loss falls from 3.0 to 2.10 at 1e-2, spikes to 3.8 (above its start) around
    7e-2, then settles at 2.08 (chance level) around 0.7 and blows up past 2. The global minimum is the chance
    plateau; every rule must read only the part before the spike: loss_min at 1e-2."""
    y = np.interp(X, [-5.0, -2.0, -1.6, -1.2, -0.6, 0.3, 1.0], [3.0, 2.1, 2.1, 4.0, 2.08, 2.08, 9.0])
    assert -0.6 <= X[int(np.argmin(y))] <= 0.3                    # the global minimum: the chance plateau
    first = relapse_index(y)
    assert first is not None and -1.6 < X[first] < -1.2             # on the way up the spike
    sugg, _ = compute_suggestions(LRS, y)
    assert -2.1 < math.log10(sugg["loss_min"]) < -1.6                  # on the first floor, before the spike
    assert all(v <= sugg["loss_min"] for v in sugg.values())


def test_a_relapse_needs_a_real_fall_first_and_a_return_above_the_start():
    assert relapse_index([3.0, 2.98, 3.01, 2.0, 1.0]) is None        # an early wobble of 1% is no fall
    assert relapse_index([3.0, 2.5, 2.0, 2.9, 1.0]) is None          # rose, but not back to its start
    assert relapse_index([3.0, 2.5, 2.0, 3.1, 1.0]) == 3
    assert relapse_index([3.0, 2.5, float("nan"), 1.0]) == 2         # non-finite: a rise
    assert relapse_index([0.0, -1.0, 1.0]) is None                   # a start <= 0: no scale to judge by


def test_on_a_floor_near_zero_loss_min_is_where_the_floor_starts():
    """A short test cycling 4 batches memorised them: the loss falls from 2.7 to ~0 by 0.1 and stays there up to
    10, wobbling by 1e-4 (no gradient left to blow up with). Its minimum lands anywhere on the floor (4.3 on the
    smoke data, where training failed); loss_min is where the loss first falls under 10% of its start."""
    rng = np.random.default_rng(0)
    y = 2.7 / (1 + np.exp((X + 1.7) * 4)) + 1e-4 * rng.random(X.size)
    y[X > 0.6] -= 5e-5  # the deepest point far along the floor, at 4+
    sugg, smoothed = compute_suggestions(LRS, y)
    assert X[int(np.argmin(smoothed))] > 0.5                              # argmin: out on the floor
    crossing = X[int(np.argmax(smoothed < 0.1 * smoothed[0]))]
    assert math.log10(sugg["loss_min"]) == pytest.approx(crossing) and -1.8 < crossing < -1.0
    assert sugg["min_div10"] == pytest.approx(sugg["loss_min"] / 10)
    assert all(v <= sugg["loss_min"] for v in sugg.values())


def test_a_low_loss_that_blows_up_later_is_no_floor():
    """Easy data: the loss falls under 10% of its start and blows up past 1. Its minimum is a real one."""
    y = 2.7 / (1 + np.exp((X + 2.5) * 4)) + 0.05 + 20.0 * np.clip(X, 0, None) ** 2
    sugg, smoothed = compute_suggestions(LRS, y)
    assert floor_start(smoothed) is None
    assert sugg["loss_min"] == pytest.approx(LRS[int(np.argmin(smoothed))])
    assert -1.0 < math.log10(sugg["loss_min"]) <= 0.0
    assert floor_start([2.0, 0.5, 0.1, 0.05]) == 2 and floor_start([2.0, 0.5, 0.1, 0.5]) is None
    assert floor_start([2.0, 1.0, 0.5]) is None and floor_start([0.0, 0.0]) is None


def test_the_accuracy_test_refuses_pure_noise_and_finds_a_real_rise_measured_as_noisily():
    """Oracle: binomial draws. 400 accuracy tests of 40 points on 256 images each at a constant accuracy (nothing
    learns): the rule must find no bounds in at least 90% (one standard error, the rule before, found some in over
    80%). The same noise on a real rise from 0.1 (to LR 0.2) to 0.4 (from LR 0.6): bounds found, with max_lr past the
    rise's start, in at least 95% (noise can still read an early start and dip as base_lr and a fall)."""
    rng = np.random.default_rng(0)
    lr = np.linspace(0.0, 1.0, 40)
    refused = 0
    for _ in range(400):
        try:
            accuracy_test_bounds(lr, rng.binomial(256, 0.1, 40) / 256, num_images=256)
        except ValueError:
            refused += 1
    assert refused >= 360
    truth = np.clip(0.1 + 0.3 * (lr - 0.2) / 0.4, 0.1, 0.4)
    found = []
    for _ in range(200):
        try:
            found.append(accuracy_test_bounds(lr, rng.binomial(256, truth) / 256, num_images=256))
        except ValueError:
            pass
    assert sum(res["max_lr"] > 0.2 for res in found) >= 190, len(found)
