"""Divergence is a result, not a crash: stop a run whose training loss goes non-finite (or explodes).

:class:`DivergenceStop` raises :class:`Diverged` from the batch that diverged. Lightning then ends ``fit`` without
its end-of-epoch hooks, so no checkpoint is written from the broken weights and ``last.ckpt`` keeps the last good
state; ``train.py`` catches :class:`Diverged`, records the run as ``diverged`` with the step and LR, and returns
the worst possible value to a sweeper, so a sweep goes on with its next job.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


@dataclass
class Diverged(Exception):
    """The training loss at ``step`` (optimizer step, LR ``lr``) was ``loss``: non-finite or past the limit."""

    step: int
    lr: float | None
    loss: float
    why: str

    def __str__(self) -> str:
        lr = "" if self.lr is None else f", lr {self.lr:.3g}"
        return f"{self.why} at step {self.step}{lr}"


class DivergenceStop(Callback):
    """Stop on a non-finite training loss; with ``explode_factor`` also on a loss above ``explode_factor`` times
    the mean of the first ``early_steps`` losses (off by default: a loss may legitimately rise during warm-up)."""

    def __init__(self, explode_factor: float | None = None, early_steps: int = 10) -> None:
        super().__init__()
        if explode_factor is not None and not (isinstance(explode_factor, (int, float)) and explode_factor > 1):
            raise ValueError(f"callbacks.divergence.explode_factor must be a number > 1 or null, got {explode_factor!r}")
        if not isinstance(early_steps, int) or early_steps < 1:
            raise ValueError(f"callbacks.divergence.early_steps must be an integer >= 1, got {early_steps!r}")
        self.explode_factor, self.early_steps = explode_factor, early_steps
        self.early: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        value = float(loss.detach())
        if not math.isfinite(value):
            raise Diverged(trainer.global_step, _lr(trainer), value, f"non-finite training loss ({value})")
        if self.explode_factor is None:
            return
        if len(self.early) < self.early_steps:
            self.early.append(value)
            return
        limit = self.explode_factor * sum(self.early) / len(self.early)
        if value > limit:
            raise Diverged(trainer.global_step, _lr(trainer), value,
                           f"training loss {value:.4g} above {self.explode_factor:g} x its early mean ({limit:.4g})")

    def state_dict(self) -> dict[str, Any]:
        return {"early": list(self.early)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.early = list(state_dict.get("early", []))


def _lr(trainer: pl.Trainer) -> float | None:
    groups = [g for opt in trainer.optimizers for g in opt.param_groups]
    return float(groups[0]["lr"]) if groups else None
