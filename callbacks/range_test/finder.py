"""The LR range test as a phase of its own, whose result flows forward.

    result = find_lr(model, datamodule)   # sweeps, restores the model bitwise, returns a RangeTestResult
    result.lr                             # the chosen max LR (what scheduler.max_lr=auto becomes)
    result.plot()                         # a matplotlib Figure (notebooks)

:func:`find_lr` runs a range-test callback (:class:`~callbacks.range_test.loss.LRRangeTest` by default, or an
:class:`~callbacks.range_test.accuracy.AccuracyRangeTest`) in a Trainer of its own built from the run's trainer
settings; the callback sweeps in ``on_train_start``, restores everything and stops the fit before any training
epoch. Its progress (steps, ETA, LR, smoothed loss) shows on a
:class:`~callbacks.range_test.progress.RangeTestProgressBar` when the run's trainer has ``enable_progress_bar``
(rank 0 only). The same :func:`~callbacks.range_test.state.preserved_state` wraps the whole fit here, for what
Lightning's fit itself changes around the callback. Nothing is written anywhere: the caller decides
(``result.save(run_dir)``, ``result.log_to(loggers)``, ``result.print()``). An accuracy test that finds no bounds
raises :class:`~callbacks.range_test.accuracy.NoBounds` (a ValueError saying what it saw), whose ``result`` holds the
points all the same.
"""
from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl

from callbacks.range_test.base import RangeTestCallback
from callbacks.range_test.interface import check_data, check_module
from callbacks.range_test.loss import LRRangeTest
from callbacks.range_test.progress import RangeTestProgressBar
from callbacks.range_test.result import RangeTestResult
from callbacks.range_test.state import preserved_state

__all__ = ["RangeTestResult", "RangeTestCallback", "find_lr"]


#: Trainer settings find_lr forces, whatever the caller passes (``enable_progress_bar`` chooses the range test's own
#: progress display instead of Lightning's training bar).
_FORCED = dict(logger=False, enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
               min_epochs=None, min_steps=None)


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
    model summary, sanity validation and min_epochs/min_steps are switched off whatever is passed, and any
    ``callbacks`` are dropped. Pass the run's ``max_epochs`` (or ``max_steps``; default: one epoch): the max_lr
    trials are sized from it, and with Adagrad the LR is carried to that run's LR peak
    (:mod:`callbacks.range_test.step_count`). ``enable_progress_bar`` (default true, as in Lightning) shows the
    sweep's and the trials' progress instead of Lightning's training bar. The model, the datamodule's
    ``state_dict()`` and the global RNGs are left as they were (the model's weights bitwise, also what its own fit hooks change, such as a
    data-dependent init in ``on_fit_start``; a model trained on an accelerator comes back on the CPU, as after any
    ``Trainer.fit``). What the model and data must provide: :mod:`callbacks.range_test.interface` (checked
    here, before the fit starts)."""
    if range_test is None:
        range_test = LRRangeTest()
    if not isinstance(range_test, RangeTestCallback):
        raise TypeError(f"find_lr: range_test must be an LRRangeTest or AccuracyRangeTest, got {type(range_test)}")
    check_module(model)
    check_data(model, datamodule, train_dataloaders, val_dataloaders, needs_validation=range_test.needs_validation)
    trainer_kwargs.pop("callbacks", None)
    if "max_epochs" not in trainer_kwargs and "max_steps" not in trainer_kwargs:
        trainer_kwargs["max_epochs"] = 1  # the fit stops at train start anyway; spares Lightning's 1000-epoch default
    bar = [RangeTestProgressBar()] if trainer_kwargs.pop("enable_progress_bar", None) in (None, True) else []
    trainer = pl.Trainer(**{**trainer_kwargs, **_FORCED}, enable_progress_bar=bool(bar), callbacks=[range_test, *bar])
    range_test.result = None
    # the module, the datamodule and the RNGs as they are now, whatever the fit around the sweep does to them
    with preserved_state(model, datamodule):
        trainer.fit(model, train_dataloaders=train_dataloaders, val_dataloaders=val_dataloaders,
                    datamodule=datamodule)
    if range_test.result is None:
        raise RuntimeError("find_lr: the range test did not run (no training batches? check limit_train_batches)")
    return range_test.result
