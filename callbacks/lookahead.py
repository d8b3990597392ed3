"""Lookahead-style weight averaging as in airbench94 (Jordan 2024; cf. Zhang et al. 2019, 'Lookahead Optimizer').

Every ``every`` optimizer steps the running average is pulled towards the live weights and the live weights are
reset to it: ``avg <- lerp(avg, w, 1 - d); w <- avg`` with decay ``d = decay * (step / total) ** 3``, so the
averaging is weak early and strong near the end. After the last step the weights are the average.
Float buffers (BatchNorm statistics) are averaged too. The pull is the pure :func:`lookahead_pull` over tensor lists
(a few fused ``_foreach`` kernels), which the callback caches at train start.
"""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch


def lookahead_decay(step: int, total_steps: int, decay: float) -> float:
    """The averaging decay at optimizer step ``step`` (pure schedule function)."""
    return decay * (step / total_steps) ** 3


@torch.no_grad()
def lookahead_pull(average: list[torch.Tensor], live: list[torch.Tensor], decay: float) -> None:
    """In place, pairwise over the two lists: ``avg <- lerp(avg, w, 1 - decay); w <- avg``."""
    torch._foreach_lerp_(average, live, 1.0 - decay)
    torch._foreach_copy_(live, average)


class Lookahead(pl.Callback):
    def __init__(self, every: int = 5, decay: float = 0.95 ** 5):
        if every < 1:
            raise ValueError(f"callbacks.lookahead.every must be >= 1, got {every}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"callbacks.lookahead.decay must be in [0, 1), got {decay}")
        self.every, self.decay = every, decay
        self.average: dict[str, torch.Tensor] | None = None  # by state_dict key: what checkpoints hold
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])  # (average, live), same order
        self._last_step = -1

    def _floats(self, pl_module):
        return {k: v for k, v in pl_module.state_dict().items() if v.is_floating_point()}

    def on_train_start(self, trainer, pl_module):
        if not math.isfinite(trainer.estimated_stepping_batches):
            raise ValueError("callbacks.lookahead: the averaging ramps up over the whole run, which needs a finite "
                             "length: set trainer.max_epochs or trainer.max_steps")
        self._last_step = trainer.global_step  # after a resume, this step's average was already taken
        if self.average is None or trainer.ckpt_path is None:
            self.average = {k: v.detach().clone() for k, v in self._floats(pl_module).items()}
        else:  # restored from a checkpoint
            self.average = {k: v.to(pl_module.device) for k, v in self.average.items()}
        live = self._floats(pl_module)  # detached views of the parameters and buffers: pulled in place
        self._pairs = ([self.average[k] for k in live], list(live.values()))

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        if step == 0 or self.average is None or step == self._last_step:
            return  # nothing to average yet, or this optimizer step was handled (gradient accumulation)
        self._last_step = step
        if step % self.every == 0:
            self._pull(pl_module, lookahead_decay(step, total, self.decay))
        if step >= total:
            self._pull(pl_module, 1.0)  # end of training: the weights become the average

    def _pull(self, pl_module, decay: float):
        lookahead_pull(*self._pairs, decay)

    def state_dict(self):
        return {"average": self.average, "every": self.every, "decay": self.decay}

    def load_state_dict(self, state_dict):
        self.average = state_dict["average"]
        self.every, self.decay = state_dict["every"], state_dict["decay"]
