"""Annealed Gaussian gradient noise (Neelakantan et al. 2015, "Adding gradient noise improves learning
for very deep networks").

Before every optimizer step ``t`` (``trainer.global_step``) each gradient ``g`` becomes
``g + N(0, sigma_t^2)`` with ``sigma_t^2 = eta / (1 + t)**gamma`` (the paper uses eta in {0.01, 0.3, 1.0},
gamma = 0.55). The noise is added in ``on_before_optimizer_step``, i.e. after gradient accumulation and
AMP unscaling and before gradient clipping, once per optimizer step.

The noise comes from the callback's own ``torch.Generator`` (one per device, seeded with ``seed``), so
runs repeat, the global RNG is untouched, and, in data-parallel runs, every rank adds the same noise to
its (identical, all-reduced) gradients. The generator state is saved in checkpoints so that a resumed
run continues the same noise sequence.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from callbacks.schedules.shapes import gradient_noise_sigma


class GradientNoise(Callback):
    """Add N(0, eta / (1 + t)^gamma) to every gradient before optimizer step t; log sigma as
    ``train/grad_noise_sigma``.

    Args:
        eta: noise variance at step 0 (> 0).
        gamma: decay exponent of the variance (>= 0).
        seed: seed of the callback's generator (integer >= 0).
    """

    def __init__(self, eta: float = 0.3, gamma: float = 0.55, seed: int = 0) -> None:
        super().__init__()
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (math.isfinite(eta) and eta > 0):
            raise ValueError(f"GradientNoise: `eta` must be a number > 0, got {eta!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"GradientNoise: `gamma` must be a number >= 0, got {gamma!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"GradientNoise: `seed` must be an integer >= 0, got {seed!r}")
        self.eta = float(eta)
        self.gamma = float(gamma)
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        self._pending_states: dict[str, torch.Tensor] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            if key in self._pending_states:
                gen.set_state(self._pending_states.pop(key))
            self._generators[key] = gen
        return gen

    def sigma(self, step: int) -> float:
        return gradient_noise_sigma(step, self.eta, self.gamma)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        step = trainer.global_step
        sigma = self.sigma(step)
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    noise = torch.randn(
                        p.grad.shape, generator=self._generator(p.grad.device), device=p.grad.device,
                        dtype=p.grad.dtype,
                    )
                    p.grad.add_(noise, alpha=sigma)
        for logger in trainer.loggers:
            logger.log_metrics({"train/grad_noise_sigma": sigma}, step=step)

    def state_dict(self) -> dict[str, Any]:
        states = {key: gen.get_state() for key, gen in self._generators.items()}
        states.update({k: v for k, v in self._pending_states.items() if k not in states})
        return {"eta": self.eta, "gamma": self.gamma, "seed": self.seed, "generator_states": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        diffs = [
            f"{key}: checkpoint {state_dict.get(key)!r}, config {getattr(self, key)!r}"
            for key in ("eta", "gamma", "seed")
            if state_dict.get(key) != getattr(self, key)
        ]
        if diffs:
            raise ValueError(
                "GradientNoise: refusing to resume: the checkpoint's gradient-noise settings differ from the "
                "current config: " + "; ".join(diffs)
            )
        self._generators = {}
        self._pending_states = {k: v.clone() for k, v in state_dict.get("generator_states", {}).items()}
