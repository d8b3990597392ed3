"""Divergence is a result, not a crash: stop a run whose training loss goes non-finite (or explodes).

:class:`DivergenceStop` keeps each step's loss on its device (no device-to-host sync per step) and reads the losses
kept so far in one copy every ``trainer.log_every_n_steps`` batches, before validation, at the end of each epoch and
of training, and whenever a checkpoint is saved (``state_dict``, which Lightning calls before it writes one). When
one diverged it raises :class:`Diverged` naming the first diverged step and its LR, so no checkpoint is ever
written from broken weights and ``last.ckpt`` keeps the last good state; ``train.py`` catches :class:`Diverged`,
records the run as ``diverged`` and returns the worst possible value to a sweeper, so a sweep goes on with its next
job. (A weights-only checkpoint, ``ModelCheckpoint(save_weights_only=True)``, skips callback hooks: this project
saves none.)
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


def first_divergence(losses: list[float], early: list[float], explode_factor: float | None,
                     early_steps: int) -> tuple[int | None, str, list[float]]:
    """Walk training losses in order: the index of the first that diverged (non-finite, or with ``explode_factor``
    above that multiple of the mean of the first ``early_steps`` losses) and why, or None and ""; and the early
    losses, ``early`` extended."""
    early = list(early)
    for i, value in enumerate(losses):
        if not math.isfinite(value):
            return i, f"non-finite training loss ({value})", early
        if explode_factor is None:
            continue
        if len(early) < early_steps:
            early.append(value)
            continue
        limit = explode_factor * sum(early) / len(early)
        if value > limit:
            return i, f"training loss {value:.4g} above {explode_factor:g} x its early mean ({limit:.4g})", early
    return None, "", early


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
        self._unread: list[tuple[int, float | None, torch.Tensor]] = []  # (step, lr, loss on its device)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        self._unread.append((trainer.global_step, _lr(trainer), loss.detach()))
        if len(self._unread) >= max(1, trainer.log_every_n_steps):
            self.check()

    def check(self) -> None:
        """Read the losses kept since the last check (one device-to-host copy); raise Diverged at the first bad one."""
        if not self._unread:
            return
        unread, self._unread = self._unread, []
        values = torch.stack([loss.reshape(()).float() for _, _, loss in unread]).tolist()
        index, why, self.early = first_divergence(values, self.early, self.explode_factor, self.early_steps)
        if index is not None:
            step, lr, _ = unread[index]
            raise Diverged(step, lr, values[index], why)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check()  # no validation of broken weights, no epoch-end checkpoint from them

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check()

    def state_dict(self) -> dict[str, Any]:
        self.check()  # Lightning asks for this first when it saves a checkpoint: a diverged run writes none
        return {"early": list(self.early)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.early = list(state_dict.get("early", []))


def _lr(trainer: pl.Trainer) -> float | None:
    groups = [g for opt in trainer.optimizers for g in opt.param_groups]
    return float(groups[0]["lr"]) if groups else None
