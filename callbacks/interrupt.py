"""Ctrl-C and SIGTERM (what a cluster scheduler sends before preemption) save a resumable checkpoint.

The first signal only sets a flag; at the end of the batch being trained, :class:`InterruptCheckpoint` writes a
mid-epoch checkpoint (model, optimizer, schedule, data position: a resume continues bitwise) and raises
:class:`Interrupted`, which ``train.py`` turns into a message saying how to resume. A second Ctrl-C stops at once.
Before training, during the LR search, there is nothing to save: :func:`stop_at_once` turns either signal into
:class:`SearchInterrupted` at once (Lightning would otherwise note a SIGTERM and go on, and end a Ctrl-C with exit 1).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Interrupted(Exception):
    step: int
    checkpoint: str
    signal_name: str

    def __str__(self) -> str:
        return f"{self.signal_name} at step {self.step}: saved {self.checkpoint}"


class SearchInterrupted(Exception):
    """A signal stopped a phase that trains nothing (the LR search): no checkpoint, the run starts again."""

    def __init__(self, signal_name: str, phase: str) -> None:
        super().__init__(f"{signal_name} during the {phase}: stopped before training, with no checkpoint to resume "
                         f"from")


@contextmanager
def stop_at_once(phase: str) -> Iterator[None]:
    """SIGINT or SIGTERM inside the block raises :class:`SearchInterrupted` (naming ``phase``) where the program is;
    the previous handlers come back on leaving. Outside the main thread (no signal handlers there): nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        raise SearchInterrupted(signal.Signals(signum).name, phase)

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class InterruptCheckpoint(Callback):
    """On SIGINT/SIGTERM during fit: checkpoint to ``path`` after the current batch, then raise Interrupted."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = str(path)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        for sig, handler in self._previous.items():  # a second signal acts as it would have without us
            signal.signal(sig, handler)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        received = self.received is not None
        if trainer.world_size > 1:  # any rank's signal stops every rank (a collective: only with several)
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if received:
            trainer.save_checkpoint(self.path)
            name = signal.Signals(self.received).name if self.received else "signal"
            raise Interrupted(trainer.global_step, self.path, name)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
