"""Pure schedule functions against independent oracles: torch's own LR schedulers, numpy.interp, formulas."""

import math
import warnings

import numpy as np
import pytest
import torch

from callbacks.schedules import shapes as schedules

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
                                    anneal_strategy, True, base_m, max_m)
        assert _close(lr, lr_t), (step, lr, lr_t)
        assert _close(m, m_t), (step, m, m_t)
    # the last optimizer step uses the final value max_lr / div / final_div
    assert _close(schedules.one_cycle(total - 1, total, max_lr, div_factor, final_div_factor, pct_start,
                                      three_phase, anneal_strategy)[0], max_lr / div_factor / final_div_factor)


def test_one_cycle_three_phase_knots_are_torch_arithmetic():
    assert schedules.one_cycle_knots(100, 0.45, True) == [0.0, 44.0, 88.0, 99]
    assert schedules.one_cycle_knots(100, 0.3, False) == [0.0, 29.0, 99]
    with pytest.raises(ValueError, match=r"only 2 optimizer steps: one-cycle with scheduler.pct_start=0.45 needs more "
                                         r"than 1/pct_start = 2.22 \(pct_start x total_steps > 1\)"):
        schedules.one_cycle_knots(2, 0.45, True)  # pct_start * total <= 1: phases would not increase
    with pytest.raises(ValueError, match=r"pct_start=0.6 leaves no room for the phases of a 100-step run"):
        schedules.one_cycle_knots(100, 0.6, True)  # the way down would end after the last step


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
        lr, m = schedules.cyclic(step, n, base_lr, max_lr, up, down, mode, gamma, "step", True, base_m, max_m)
        assert _close(lr, lr_t), (step, lr, lr_t)
        assert _close(m, m_t), (step, m, m_t)


def test_cyclic_fractional_step_size_matches_torch():
    opt = _optimizer("sgd")
    sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2.5, step_size_down=4.25)
    for step, (lr_t, m_t) in enumerate(_torch_sequence(opt, sched, 40)):
        lr, m = schedules.cyclic(step, 40, 0.01, 0.1, 2.5, 4.25, cycle_momentum=True, base_momentum=0.8,
                                 max_momentum=0.9)
        assert _close(lr, lr_t) and _close(m, m_t)


# --------------------------------------------------------------------------- primitives
def test_knot_curve_matches_numpy_interp():
    knots, values = [0.0, 5.0, 24.0], [0.0, 0.4, 0.0]
    xs = np.linspace(-3, 30, 331)
    got = [schedules.knot_curve(x, knots, values) for x in xs]
    np.testing.assert_allclose(got, np.interp(xs, knots, values), rtol=1e-12, atol=1e-15)


def test_knot_curve_jump_and_cos_piece():
    knots, values = [0, 10, 10, 20], [1.0, 1.0, 0.1, 0.1]
    assert schedules.knot_curve(10, knots, values) == 1.0  # left value at the knot itself
    assert schedules.knot_curve(10.001, knots, values) == 0.1
    # cos piece: half a cosine, flat at both ends, symmetric about the midpoint
    assert math.isclose(schedules.knot_curve(5, [0, 10], [2.0, 0.0], "cos"), 1.0)
    assert math.isclose(schedules.knot_curve(2.5, [0, 10], [2.0, 0.0], "cos"), 1 + math.cos(math.pi / 4))
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
    lrs = [schedules.warmup(s, total, max_lr, w, warmup_type, f, decay, milestones, gamma, eta_min, unit="step")[0]
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
    got = [schedules.warmup(s, 10, 1.0, 2.5, "gradual", 0.0, unit="step")[0] for s in range(4)]
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


# --------------------------------------------------------------------------- units
def test_piecewise_epoch_and_fraction_knots_map_onto_steps():
    # 10 epochs of 8 steps = 80 steps; knot "epoch 5" is step 5 * 79 / 10, the end (epoch 10) the last step
    total, spe = 80, 8
    for step in range(total):
        lr, mom = schedules.piecewise(step, total, [0, 5, 10], [0.0, 0.4, 0.0], "epoch", steps_per_epoch=spe)
        assert lr == pytest.approx(np.interp(step, [0, 5 * 79 / 10, 79], [0.0, 0.4, 0.0]))
        assert mom is None
        frac, _ = schedules.piecewise(step, total, [0, 0.5, 1], [0.0, 0.4, 0.0], "fraction")
        assert frac == pytest.approx(lr)
    _, mom = schedules.piecewise(40, total, [0, 10], [0.1, 0.1], "epoch", [0.9, 0.8], steps_per_epoch=spe)
    assert mom == pytest.approx(0.9 - 0.1 * 40 / 79)


PAGE = {"knots": [0, 5, 24], "values": [0.0, 0.4, 0.0], "unit": "epoch", "anneal_strategy": "linear"}


def test_piecewise_knots_past_the_end_of_the_run_are_named_with_the_lr_it_stops_at_and_the_fix():
    """Page's knots (0, 5, 24 epochs) on a 2-epoch run of 10 steps an epoch: the LR climbs to 0.4 * 19 / (5 * 19 / 2)
    = 0.16 at the last step and never anneals (the schedule itself agrees). Knots that end with the run (within one
    step) and fraction knots fit."""
    said = schedules.shortfall("piecewise", PAGE, 20, 10)
    assert said.startswith("scheduler.knots end at epoch 24, past the end of the run (2 epoch(s), 20 optimizer steps): "
                           "its LR stops at 0.16 on the way to 0,") and "unit=fraction" in said
    assert schedules.piecewise(19, 20, **PAGE, steps_per_epoch=10)[0] == pytest.approx(0.16)
    assert schedules.shortfall("piecewise", {**PAGE, "knots": [0, 1, 2]}, 20, 10) is None
    assert schedules.shortfall("piecewise", {**PAGE, "knots": [0, 5, 20], "unit": "step"}, 20, 10) is None
    assert "end at step 30" in schedules.shortfall("piecewise", {**PAGE, "knots": [0, 5, 30], "unit": "step"}, 20, 10)
    assert schedules.shortfall("piecewise", {**PAGE, "knots": [0, 0.2, 1], "unit": "fraction"}, 20, 10) is None
    assert schedules.shortfall("one_cycle", {}, 20, 10) is None


def test_a_cyclic_half_cycle_longer_than_the_run_is_named():
    """step_size_up 4 epochs of 10 steps on a 20-step run: the LR climbs from 0.1 to 0.1 + 0.9 * 19 / 40 = 0.5275
    (the schedule itself agrees), never to max_lr 1. In steps, the size is not multiplied by the epoch's steps."""
    shape = {"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 4, "unit": "epoch"}
    assert schedules.shortfall("cyclic", shape, 20, 10) == (
        "scheduler.step_size_up is 40 optimizer steps, longer than the run (20): the LR climbs from base_lr 0.1 to "
        "0.5275 at most, never to max_lr 1. Smith: step_size_up 2-10 epochs, a few cycles a run (lower it, or train "
        "longer)")
    assert schedules.cyclic(19, 20, 0.1, 1.0, 4, unit="epoch", steps_per_epoch=10)[0] == pytest.approx(0.5275)
    assert schedules.shortfall("cyclic", {**shape, "step_size_up": 1}, 20, 10) is None
    assert schedules.shortfall("cyclic", {**shape, "step_size_up": 15, "unit": "step"}, 20, 10) is None


def test_cyclic_epoch_unit_is_steps_per_epoch_times_size():
    for step in range(60):
        by_epoch = schedules.cyclic(step, 60, 0.01, 0.1, 1.5, unit="epoch", steps_per_epoch=4)
        by_step = schedules.cyclic(step, 60, 0.01, 0.1, 6, unit="step")
        assert by_epoch == by_step


def test_momentum_off_returns_none():
    assert schedules.one_cycle(3, 100, 0.4, cycle_momentum=False)[1] is None
    assert schedules.cyclic(3, 100, 0.1, 0.4, 10)[1] is None
    assert schedules.warmup(3, 100, 0.4, 5, unit="step")[1] is None


# --------------------------------------------------------------------------- shape validation lives here
BAD_SHAPES = [
    (schedules.one_cycle, dict(max_lr=0), "max_lr"),
    (schedules.one_cycle, dict(max_lr=-1.0), "max_lr"),
    (schedules.one_cycle, dict(max_lr="big"), "max_lr"),
    (schedules.one_cycle, dict(max_lr="auto"), "max_lr must be a number > 0, got 'auto'"),
    (schedules.one_cycle, dict(max_lr=1, div_factor=0), "div_factor"),
    (schedules.one_cycle, dict(max_lr=1, final_div_factor=-2), "final_div_factor"),
    (schedules.one_cycle, dict(max_lr=1, pct_start=0.0, three_phase=False), "pct_start"),
    (schedules.one_cycle, dict(max_lr=1, pct_start=1.0, three_phase=False), "pct_start"),
    (schedules.one_cycle, dict(max_lr=1, pct_start=0.5, three_phase=True), "pct_start"),
    (schedules.one_cycle, dict(max_lr=1, anneal_strategy="exp"), "anneal_strategy"),
    (schedules.one_cycle, dict(max_lr=1, base_momentum=1.0), "base_momentum"),
    (schedules.one_cycle, dict(max_lr=1, max_momentum=-0.1), "max_momentum"),
    (schedules.one_cycle, dict(max_lr=1, base_momentum=0.95, max_momentum=0.85), "base_momentum"),
    (schedules.cyclic, dict(base_lr=0.1, max_lr=0.05), "max_lr"),
    (schedules.cyclic, dict(base_lr=-0.1, max_lr=0.05), "base_lr"),
    (schedules.cyclic, dict(base_lr=0.0, max_lr=1, step_size_up=0.5), "step_size_up"),
    (schedules.cyclic, dict(base_lr=0.0, max_lr=1, step_size_up=4, step_size_down=0), "step_size_down"),
    (schedules.cyclic, dict(base_lr=0.0, max_lr=1, mode="sine"), "mode"),
    (schedules.cyclic, dict(base_lr=0.0, max_lr=1, mode="exp_range", gamma=1.5), "gamma"),
    (schedules.cyclic, dict(base_lr=0.0, max_lr=1, unit="fraction"), "unit"),
    (schedules.cyclic, dict(base_lr=0.0, max_lr=1, max_momentum=1.2), "max_momentum"),
    (schedules.piecewise, dict(knots=[0, 5], values=[0.1]), "values"),
    (schedules.piecewise, dict(knots=[0, 5, 3], values=[0, 1, 0]), "knots"),
    (schedules.piecewise, dict(knots=[0, 0.5, 2], values=[0, 1, 0], unit="fraction"), "knots"),
    (schedules.piecewise, dict(knots=[0, 1], values=[0.1, -0.1]), "values"),
    (schedules.piecewise, dict(knots=[0, 1], values=[0, 1], momentum_values=[0.9, 1.0]), "momentum_values"),
    (schedules.piecewise, dict(knots=[0, 1], values=[0, 1], momentum_knots=[0, 1]), "momentum_knots"),
    (schedules.piecewise, dict(knots=[0, 1], values=[0, 1], unit="batch"), "unit"),
    (schedules.warmup, dict(max_lr=0), "max_lr"),
    (schedules.warmup, dict(max_lr=1, warmup_length=-1), "warmup_length"),
    (schedules.warmup, dict(max_lr=1, warmup_type="linear"), "warmup_type"),
    (schedules.warmup, dict(max_lr=1, warmup_factor=2.0), "warmup_factor"),
    (schedules.warmup, dict(max_lr=1, decay="poly"), "decay"),
    (schedules.warmup, dict(max_lr=1, decay="step", milestones=[30, 10]), "milestones"),
    (schedules.warmup, dict(max_lr=1, gamma=0), "gamma"),
    (schedules.warmup, dict(max_lr=1, eta_min=1.0), "eta_min"),
    (schedules.warmup, dict(max_lr=1, warmup_length=1.0, unit="fraction"), "warmup_length"),
]


@pytest.mark.parametrize("fn,shape,key", BAD_SHAPES)
def test_bad_shape_is_refused_naming_the_key(fn, shape, key):
    with pytest.raises(ValueError, match=f"scheduler.{key}"):
        fn(0, 1000, **shape, steps_per_epoch=10)


def test_run_length_checks():
    with pytest.raises(ValueError, match=r"warmup_length must be shorter than training: got 3 epoch\(s\), the run "
                                         r"is 3 epoch\(s\)"):
        schedules.warmup(0, 24, 0.1, 3, unit="epoch", steps_per_epoch=8)
    with pytest.raises(ValueError, match=r"step_size_up is 0.8 optimizer steps"):
        schedules.cyclic(0, 24, 0.01, 0.1, 0.1, unit="epoch", steps_per_epoch=8)
    with pytest.raises(ValueError, match="unit=epoch needs a train dataloader with a length"):
        schedules.piecewise(0, 24, [0, 1], [0.1, 0.0], unit="epoch", steps_per_epoch=None)


def test_one_set_of_defaults_matches_the_configs():
    """The scheduler configs restate the function defaults they document (one_cycle: the course's shape)."""
    import inspect

    from omegaconf import OmegaConf

    from conftest import CONF

    for name in ("one_cycle", "cyclic", "piecewise", "warmup"):
        cfg = OmegaConf.to_container(OmegaConf.load(CONF / "scheduler" / f"{name}.yaml"))
        fn = getattr(schedules, name)
        assert cfg.pop("_target_") == f"callbacks.schedules.shapes.{name}" and cfg.pop("_partial_") is True
        params = inspect.signature(fn).parameters
        assert set(cfg) <= set(params), set(cfg) - set(params)
        assert not {"total_steps", "steps_per_epoch", "epochs"} & set(cfg)  # shape only
    defaults = {k: p.default for k, p in inspect.signature(schedules.one_cycle).parameters.items()}
    cfg = OmegaConf.load(CONF / "scheduler" / "one_cycle.yaml")
    for key in ("div_factor", "final_div_factor", "pct_start", "three_phase", "anneal_strategy", "base_momentum",
                "max_momentum", "cycle_momentum"):
        assert cfg[key] == defaults[key], key
