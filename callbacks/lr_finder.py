"""The LR range test as a phase of its own, whose result flows forward.

    result = find_lr(model, datamodule)   # sweeps, restores the model bitwise, returns a RangeTestResult
    result.lr                             # the chosen max LR (what scheduler.max_lr=auto becomes)
    result.plot()                         # a matplotlib Figure (notebooks)

:func:`find_lr` runs a range-test callback (:class:`~callbacks.range_test_loss.LRRangeTest` by default, or an
:class:`~callbacks.range_test_accuracy.AccuracyRangeTest`) in a Trainer of its own built from the run's trainer
settings; the callback sweeps in ``on_train_start``, restores everything and stops the fit before any training
epoch. Nothing is written anywhere: the caller decides (``result.save(run_dir)``, ``result.log_to(loggers)``,
``result.print()``).

:class:`RangeTestCallback` is the protocol both tests follow: validate the shared arguments at construction
(errors name ``range_test.<key>``), sweep in ``on_train_start`` inside
:func:`~callbacks.range_sweep.preserved_training_state`, keep the result, stop the fit.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl
import torch

from callbacks import range_test_report as report
from callbacks.range_sweep import TrainingSnapshot, preserved_training_state, rngs_isolated

__all__ = ["RangeTestResult", "RangeTestCallback", "find_lr"]


@dataclass
class RangeTestResult:
    """What an LR range test found. ``lrs``/``losses``/``smoothed`` are the (first repeat's) sweep: one entry per
    optimizer step; ``smoothed`` is the zero-lag smoothed loss (loss test) or the running average of the loss
    used by the stop rule (accuracy test)."""

    kind: str  # "loss" | "accuracy"
    lrs: List[float]
    losses: List[float]
    smoothed: List[float]
    suggestions: Dict[str, float]  # every rule's LR (accuracy test: base_lr, max_lr, peak_lr)
    rule: str  # the rule that chose `lr`
    lr: float  # the chosen max LR
    base_lr: Optional[float] = None  # accuracy test's base_lr; None for the loss test
    status: str = ""  # how the sweep ended and how far the loss rose over its minimum
    elapsed_s: float = 0.0
    stop_index: Optional[int] = None  # step at which the stop rule fired (None: ran to the end)
    loss_rise: Optional[float] = None  # highest smoothed loss after its minimum / the minimum
    settings: Dict[str, Any] = field(default_factory=dict)  # the range test's arguments
    repeats: List[Dict[str, Any]] = field(default_factory=list)  # loss test: one sweep per seed
    spread: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per rule: values over repeats, geomean, std
    evals: List[Dict[str, Any]] = field(default_factory=list)  # accuracy test: step, lr, acc, images, stderr
    start_acc: Optional[float] = None
    peak_acc: Optional[float] = None
    eval_images: Optional[int] = None  # accuracy test: images evaluated per point (all ranks)

    def plot(self):
        """A matplotlib Figure of the sweep and its suggestions (not registered with pyplot)."""
        return report.result_figure(self)

    def to_csv(self, path: str) -> str:
        return report.write_csv(self, str(path))

    def to_json(self, path: str) -> str:
        return report.write_json(self, str(path))

    @classmethod
    def from_json(cls, path: str) -> "RangeTestResult":
        data = report.read_json_dict(str(path))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, out_dir: str) -> List[str]:
        """Write ``lr_range_test.{png,csv,json}`` (``accuracy_range_test.*`` for the accuracy test) to
        ``out_dir``; returns the paths."""
        return report.save_result(self, str(out_dir))

    def log_to(self, loggers: Any) -> None:
        """Figure and curve scalars to the TensorBoard loggers among ``loggers`` (others are skipped)."""
        report.log_result(self, loggers)

    def print(self, console: Any = None) -> None:
        """The rich table of suggestions, the status and the chosen value."""
        report.print_result(self, console)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class RangeTestCallback(pl.Callback):
    """Common arguments and flow of the loss and the accuracy range test.

    In ``on_train_start`` (optimizers, precision plugin and dataloaders exist then) it runs the sweep, restores
    everything and sets ``trainer.should_stop`` so that no training epoch follows: the test is a phase of its own
    (see :func:`find_lr`). :meth:`run` can also be called at any time during ``fit``.
    Subclasses provide ``_sweep(trainer, pl_module, snapshot) -> dict`` (with the machinery of
    :mod:`callbacks.range_sweep`) and ``_analyse(raw, elapsed_s) -> RangeTestResult``."""

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
        if not trainer.optimizers:
            raise RuntimeError("LR range test: the trainer has no optimizer (run it from on_train_start or later)")
        t0 = time.perf_counter()
        with preserved_training_state(trainer, pl_module) as snapshot, torch.enable_grad():
            raw = self._sweep(trainer, pl_module, snapshot)
        result = self._analyse(raw, time.perf_counter() - t0)
        # identical on every rank in exact arithmetic (losses and accuracies are rank-reduced); broadcast anyway
        self.result = trainer.strategy.broadcast(result, src=0)
        return self.result

    def _sweep(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", snapshot: TrainingSnapshot) -> dict:
        raise NotImplementedError

    def _analyse(self, raw: dict, elapsed_s: float) -> RangeTestResult:
        raise NotImplementedError


#: Trainer settings find_lr forces, whatever the caller passes.
_FORCED = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
               num_sanity_val_steps=0, min_epochs=None, min_steps=None)


def find_lr(
    model: "pl.LightningModule",
    datamodule: Optional["pl.LightningDataModule"] = None,
    range_test: Optional[RangeTestCallback] = None,
    train_dataloaders: Any = None,
    val_dataloaders: Any = None,
    **trainer_kwargs: Any,
) -> RangeTestResult:
    """Run an LR range test on ``model`` and return its :class:`RangeTestResult`.

    ``range_test``: an ``LRRangeTest`` (default: ``LRRangeTest()``) or ``AccuracyRangeTest``.
    ``trainer_kwargs``: the run's trainer settings (accelerator, devices, strategy, precision,
    accumulate_grad_batches, gradient_clip_val, limit_*_batches, default_root_dir, ...); logging, checkpointing,
    progress bar, model summary, sanity validation and min_epochs/min_steps are switched off whatever is passed,
    and any ``callbacks`` are dropped. The model, the datamodule's ``state_dict()`` and the global RNGs are left
    as they were (the model's weights bitwise; a model trained on an accelerator comes back on the CPU, as after
    any ``Trainer.fit``)."""
    if range_test is None:
        # imported here: range_test_loss imports RangeTestResult from this module
        from callbacks.range_test_loss import LRRangeTest

        range_test = LRRangeTest()
    if not isinstance(range_test, RangeTestCallback):
        raise TypeError(f"find_lr: range_test must be an LRRangeTest or AccuracyRangeTest, got {type(range_test)}")
    trainer_kwargs.pop("callbacks", None)
    if "max_epochs" not in trainer_kwargs and "max_steps" not in trainer_kwargs:
        trainer_kwargs["max_epochs"] = 1  # the fit stops at train start anyway; spares Lightning's 1000-epoch default
    trainer = pl.Trainer(**{**trainer_kwargs, **_FORCED}, callbacks=[range_test])
    modes = [(m, m.training) for m in model.modules()]
    dm_state = copy.deepcopy(datamodule.state_dict()) if datamodule is not None else None
    range_test.result = None
    try:
        with rngs_isolated():
            trainer.fit(model, train_dataloaders=train_dataloaders, val_dataloaders=val_dataloaders,
                        datamodule=datamodule)
    finally:
        for m, flag in modes:
            m.training = flag
        if datamodule is not None:
            datamodule.load_state_dict(dm_state)
    if range_test.result is None:
        raise RuntimeError("find_lr: the range test did not run (no training batches? check limit_train_batches)")
    return range_test.result
