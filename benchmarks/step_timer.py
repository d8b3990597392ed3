"""A timing callback for train.py, added by Hydra override (it is not part of any config):

    python train.py experiment=cifar10_fast +callbacks.step_timer._target_=benchmarks.step_timer.StepTimer \
        +callbacks.step_timer.path=/tmp/steps.json

Per training batch it keeps two ``time.perf_counter()`` stamps in memory (no I/O, no device sync in the loop) and
writes them once, at the end of training, as JSON:

* ``intervals``: time between consecutive ``on_train_batch_end`` calls = one whole optimizer step as the loop
  runs it (data fetch, transfer, augmentation, forward, backward, optimizer, every callback and logger);
* ``waits``: time from one ``on_train_batch_end`` to the next ``on_train_batch_start`` = the loader's ``next()``
  plus the batch transfer and ``on_after_batch_transfer`` (normalisation and the batched augmentation) -- the part
  of a step spent producing data rather than training on it.

Steps that cross an epoch boundary (validation, epoch-end callbacks) are left out of both lists. Also written:
``fit_s``, the seconds from ``on_train_start`` to ``on_train_end`` (training with its validation, without start-up
and test), and ``steps``, the optimizer steps taken.
"""
from __future__ import annotations

import json
import os
import time

import pytorch_lightning as pl
import torch


class StepTimer(pl.Callback):
    def __init__(self, path: str):
        self.path = path
        self.intervals: list[float] = []
        self.waits: list[float] = []
        self._last_end: float | None = None
        self._train_start: float | None = None

    def on_train_start(self, trainer, pl_module):
        self._train_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self._last_end = None  # the first step of an epoch follows validation / epoch-end work: not a plain step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._last_end is not None:
            self.waits.append(time.perf_counter() - self._last_end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        if self._last_end is not None:
            self.intervals.append(now - self._last_end)
        self._last_end = now

    def on_train_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # once, at the end: the last steps' GPU work belongs to training time
        fit_s = time.perf_counter() - self._train_start if self._train_start is not None else None
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "w") as f:
            json.dump({"intervals": self.intervals, "waits": self.waits, "fit_s": fit_s, "steps": trainer.global_step}, f)
