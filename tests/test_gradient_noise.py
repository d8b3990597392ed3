"""callbacks.gradient_noise (GradientNoise) on its own: the noise's distribution per step and its state (through
training and resume: test_schedules_lr_schedule_resume.py)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from callbacks.gradient_noise import GradientNoise


def test_gradient_noise_distribution_and_state():
    p = nn.Parameter(torch.zeros(200_000))
    opt = torch.optim.SGD([p], lr=0.1)

    def noise(cb, step):
        p.grad = torch.zeros_like(p)
        cb.on_before_optimizer_step(SimpleNamespace(global_step=step, loggers=[]), None, opt)
        return p.grad.clone()

    cb = GradientNoise(eta=0.3, gamma=0.55, seed=1)
    for step in (0, 50):
        g = noise(cb, step)
        sigma = math.sqrt(0.3 / (1 + step) ** 0.55)
        assert g.std().item() == pytest.approx(sigma, rel=0.01)
        assert abs(g.mean().item()) < 5 * sigma / math.sqrt(g.numel())
    state = cb.state_dict()
    nxt = noise(cb, 51)
    resumed = GradientNoise(eta=0.3, gamma=0.55, seed=1)
    resumed.load_state_dict(state)
    assert torch.equal(noise(resumed, 51), nxt)  # continues the same sequence
    fresh = GradientNoise(eta=0.3, gamma=0.55, seed=1)
    assert torch.equal(noise(fresh, 0), noise(GradientNoise(eta=0.3, gamma=0.55, seed=1), 0))
