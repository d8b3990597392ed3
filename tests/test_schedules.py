"""Pure schedule functions against independent oracles: torch's own LR schedulers, numpy.interp, formulas."""

import math
import warnings

import numpy as np
import pytest
import torch

from callbacks import schedules

REL = 1e-6


def _close(a, b, rel=REL):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def _optimizer(kind, lr=0.1):
    params = [torch.nn.Parameter(torch.zeros(1))]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return torch.optim.Adam(params, lr=lr)


def _torch_sequence(opt, scheduler, n):
    """(lr, momentum) that torch sets for optimizer steps 0..n-1 (momentum: SGD `momentum` / Adam `betas[0]`)."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": no gradients needed here
        for _ in range(n):
            g = opt.param_groups[0]
            out.append((g["lr"], g["betas"][0] if "betas" in g else g["momentum"]))
            scheduler.step()
    return out


# --------------------------------------------------------------------------- one-cycle vs OneCycleLR
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal_strategy", ["linear", "cos"])
@pytest.mark.parametrize(
    "total,pct_start,div_factor,final_div_factor,base_m,max_m",
    [
        (13, 0.3, 25.0, 1e4, 0.85, 0.95),
        (100, 0.45, 10.0, 100.0, 0.85, 0.95),
        (257, 0.1, 4.0, 7.5, 0.8, 0.99),
        (64, 0.25, 10.0, 100.0, 0.9, 0.9),
    ],
)
def test_one_cycle_matches_torch(kind, three_phase, anneal_strategy, total, pct_start, div_factor,
                                 final_div_factor, base_m, max_m):
    max_lr = 0.37
    opt = _optimizer(kind)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=total, pct_start=pct_start, anneal_strategy=anneal_strategy,
        cycle_momentum=True, base_momentum=base_m, max_momentum=max_m, div_factor=div_factor,
        final_div_factor=final_div_factor, three_phase=three_phase,
    )
    expected = _torch_sequence(opt, sched, total)
    for step, (lr_t, m_t) in enumerate(expected):
        lr, m = schedules.one_cycle(step, total, max_lr, div_factor, final_div_factor, pct_start, three_phase,
                                    anneal_strategy, base_m, max_m)
        assert _close(lr, lr_t), (step, lr, lr_t)
        assert _close(m, m_t), (step, m, m_t)
    # the last optimizer step uses the final value max_lr / div / final_div
    assert _close(schedules.one_cycle(total - 1, total, max_lr, div_factor, final_div_factor, pct_start,
                                      three_phase, anneal_strategy)[0], max_lr / div_factor / final_div_factor)


def test_one_cycle_three_phase_knots_are_torch_arithmetic():
    assert schedules.one_cycle_knots(100, 0.45, True) == [0.0, 44.0, 88.0, 99]
    assert schedules.one_cycle_knots(100, 0.3, False) == [0.0, 29.0, 99]
    with pytest.raises(ValueError, match="too small"):
        schedules.one_cycle_knots(2, 0.45, True)  # pct_start * total <= 1: phases would not increase


# --------------------------------------------------------------------------- cyclic vs CyclicLR
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("mode,gamma", [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.97)])
@pytest.mark.parametrize("up,down", [(5, None), (4, 7), (10, 3), (1, 1)])
def test_cyclic_matches_torch(kind, mode, gamma, up, down):
    base_lr, max_lr, base_m, max_m, n = 0.02, 0.3, 0.8, 0.93, 61
    opt = _optimizer(kind)
    sched = torch.optim.lr_scheduler.CyclicLR(
        opt, base_lr=base_lr, max_lr=max_lr, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma,
        cycle_momentum=True, base_momentum=base_m, max_momentum=max_m,
    )
    expected = _torch_sequence(opt, sched, n)
    for step, (lr_t, m_t) in enumerate(expected):
        lr, m = schedules.cyclic(step, base_lr, max_lr, up, down, mode, gamma, base_m, max_m)
        assert _close(lr, lr_t), (step, lr, lr_t)
        assert _close(m, m_t), (step, m, m_t)


def test_cyclic_fractional_step_size_matches_torch():
    opt = _optimizer("sgd")
    sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2.5, step_size_down=4.25)
    for step, (lr_t, m_t) in enumerate(_torch_sequence(opt, sched, 40)):
        lr, m = schedules.cyclic(step, 0.01, 0.1, 2.5, 4.25)
        assert _close(lr, lr_t) and _close(m, m_t)


# --------------------------------------------------------------------------- primitives
def test_piecewise_linear_matches_numpy_interp():
    knots, values = [0.0, 5.0, 24.0], [0.0, 0.4, 0.0]
    xs = np.linspace(-3, 30, 331)
    got = [schedules.piecewise(x, knots, values) for x in xs]
    np.testing.assert_allclose(got, np.interp(xs, knots, values), rtol=1e-12, atol=1e-15)


def test_piecewise_jump_and_cos_piece():
    knots, values = [0, 10, 10, 20], [1.0, 1.0, 0.1, 0.1]
    assert schedules.piecewise(10, knots, values) == 1.0  # left value at the knot itself
    assert schedules.piecewise(10.001, knots, values) == 0.1
    # cos piece: half a cosine, flat at both ends, symmetric about the midpoint
    assert math.isclose(schedules.piecewise(5, [0, 10], [2.0, 0.0], "cos"), 1.0)
    assert math.isclose(schedules.piecewise(2.5, [0, 10], [2.0, 0.0], "cos"), 1 + math.cos(math.pi / 4))
    with pytest.raises(ValueError, match="anneal_strategy"):
        schedules.anneal(0, 1, 0.5, "cubic")


# --------------------------------------------------------------------------- warm-up vs torch schedulers
def _torch_lrs(make, n, base=1.0):
    opt = _optimizer("sgd", lr=base)
    return [lr for lr, _ in _torch_sequence(opt, make(opt), n)]


@pytest.mark.parametrize("warmup_type", ["constant", "gradual"])
@pytest.mark.parametrize("decay", ["constant", "step", "cosine"])
def test_warmup_matches_torch_schedulers(warmup_type, decay):
    total, w, max_lr, f = 60, 8, 0.8, 0.125
    milestones, gamma, eta_min = [20, 45], 0.1, 0.01
    lrs = [schedules.warmup(s, total, max_lr, w, warmup_type, f, decay, milestones, gamma, eta_min)
           for s in range(total)]
    # warm-up: torch ConstantLR / LinearLR (Goyal et al. 2017)
    if warmup_type == "constant":
        warm = _torch_lrs(lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=f, total_iters=w), w, max_lr)
    else:
        warm = _torch_lrs(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=f, total_iters=w), w, max_lr)
    # decay: torch MultiStepLR from step 0 / CosineAnnealingLR started at the end of the warm-up
    if decay == "constant":
        rest = [max_lr] * (total - w)
    elif decay == "step":
        rest = _torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones, gamma), total, max_lr)[w:]
    else:
        rest = _torch_lrs(
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - 1 - w, eta_min=eta_min),
            total - w, max_lr,
        )
    expected = warm + rest
    assert len(expected) == total
    for s, (a, b) in enumerate(zip(lrs, expected)):
        assert _close(a, b), (s, a, b)
    assert lrs[0] == pytest.approx(max_lr * f)
    if decay == "cosine":
        assert lrs[-1] == pytest.approx(eta_min)  # the last step uses the final value


def test_warmup_non_integer_length():
    # 2.5 steps of gradual warm-up: steps 0, 1, 2 ramp (s / 2.5), step 3 on is the target
    got = [schedules.warmup(s, 10, 1.0, 2.5, "gradual", 0.0) for s in range(4)]
    assert got == pytest.approx([0.0, 0.4, 0.8, 1.0])


# --------------------------------------------------------------------------- gradient noise
@pytest.mark.parametrize("eta,gamma", [(0.3, 0.55), (1.0, 0.55), (0.01, 1.0)])
def test_gradient_noise_sigma_formula(eta, gamma):
    # Neelakantan et al. 2015: sigma_t^2 = eta / (1 + t)^gamma
    for t in [0, 1, 9, 99, 10_000]:
        sigma = schedules.gradient_noise_sigma(t, eta, gamma)
        assert sigma**2 * (1 + t) ** gamma == pytest.approx(eta, rel=1e-12)
    assert schedules.gradient_noise_sigma(0, eta, gamma) == pytest.approx(math.sqrt(eta))
    assert schedules.gradient_noise_sigma(99, 0.3, 0.55) == pytest.approx(math.sqrt(0.3 / 100**0.55))
