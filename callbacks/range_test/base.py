"""The flow both range tests share (:class:`RangeTestCallback`): validate the common arguments at construction
(errors name ``range_test.<key>``), check the module against :mod:`callbacks.range_test.interface`, sweep in
``on_train_start`` inside :func:`~callbacks.range_test.state.preserved_state`, keep the result, stop the fit.
"""
from __future__ import annotations

import math
import time
from typing import Any, Optional

import pytorch_lightning as pl
import torch

from callbacks.range_test.interface import check_module
from callbacks.range_test.progress import close_progress
from callbacks.range_test.result import RangeTestResult
from callbacks.range_test.state import TrainingSnapshot, preserved_state

__all__ = ["RangeTestCallback"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class RangeTestCallback(pl.Callback):
    """Common arguments and flow of the loss and the accuracy range test.

    In ``on_train_start`` (optimizers, precision plugin and dataloaders exist then) it runs the sweep, restores
    everything and sets ``trainer.should_stop`` so that no training epoch follows: the test is a phase of its own
    (see :func:`~callbacks.range_test.finder.find_lr`). :meth:`run` can also be called at any time during
    ``fit``.
    Subclasses provide ``_sweep(trainer, pl_module, snapshot) -> dict`` (with the machinery of
    :mod:`callbacks.range_test.engine`) and ``_analyse(raw, elapsed_s) -> RangeTestResult``, and say whether
    they read validation batches (``needs_validation``)."""

    needs_validation = False

    def __init__(self, min_lr: float, max_lr: float, num_steps: Optional[int], mode: str,
                 diverge_factor: Optional[float], smooth_beta: float, seed: Optional[int]) -> None:
        super().__init__()
        for key, val in (("min_lr", min_lr), ("max_lr", max_lr)):
            if not _is_number(val):
                raise ValueError(f"range_test.{key} must be a finite number, got {val!r}")
        if mode not in ("exp", "linear"):
            raise ValueError(f"range_test.mode must be 'exp' or 'linear', got {mode!r}")
        if mode == "exp" and not min_lr > 0:
            raise ValueError(f"range_test.min_lr must be > 0 for mode='exp', got {min_lr}")
        if min_lr < 0:
            raise ValueError(f"range_test.min_lr must be >= 0, got {min_lr}")
        if not min_lr < max_lr:
            raise ValueError(f"range_test.min_lr ({min_lr}) must be < range_test.max_lr ({max_lr})")
        if num_steps is not None and (not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 10):
            raise ValueError(f"range_test.num_steps must be an integer >= 10, got {num_steps!r}")
        if diverge_factor is not None and not (_is_number(diverge_factor) and diverge_factor > 1):
            raise ValueError(f"range_test.diverge_factor must be > 1 (or null), got {diverge_factor!r}")
        if not (_is_number(smooth_beta) and 0.0 <= smooth_beta < 1.0):
            raise ValueError(f"range_test.smooth_beta must be in [0, 1), got {smooth_beta!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"range_test.seed must be an integer or null, got {seed!r}")
        self.min_lr, self.max_lr = float(min_lr), float(max_lr)
        self.num_steps, self.mode = num_steps, mode
        self.diverge_factor = None if diverge_factor is None else float(diverge_factor)
        self.smooth_beta, self.seed = float(smooth_beta), seed
        self.result: Optional[RangeTestResult] = None  # of the last run

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.run(trainer, pl_module)
        trainer.should_stop = True

    def run(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> RangeTestResult:
        """Sweep now, restore everything, analyse; returns (and keeps in ``self.result``) the RangeTestResult,
        the same object on every rank."""
        check_module(pl_module)
        if not trainer.optimizers:
            raise RuntimeError("LR range test: the trainer has no optimizer (run it from on_train_start or later)")
        t0 = time.perf_counter()
        with preserved_state(pl_module, trainer.datamodule, trainer) as snapshot, torch.enable_grad():
            raw = self._sweep(trainer, pl_module, snapshot)
        close_progress(trainer)  # the analysis may warn: below the finished progress lines, not inside them
        result = self._analyse(raw, time.perf_counter() - t0)
        # identical on every rank in exact arithmetic (losses and accuracies are rank-reduced); broadcast anyway
        self.result = trainer.strategy.broadcast(result, src=0)
        return self.result

    def _sweep(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", snapshot: TrainingSnapshot) -> dict:
        raise NotImplementedError

    def _analyse(self, raw: dict, elapsed_s: float) -> RangeTestResult:
        raise NotImplementedError
