"""The LR range test as a phase of its own, whose result flows forward.

    result = find_lr(model, datamodule)   # sweeps, restores the model bitwise, returns a RangeTestResult
    result.lr                             # the chosen max LR (what scheduler.max_lr=auto becomes)
    result.plot()                         # a matplotlib Figure (notebooks)

:func:`find_lr` runs a range-test callback (:class:`~callbacks.range_test.loss.LRRangeTest` by default, or an
:class:`~callbacks.range_test.accuracy.AccuracyRangeTest`) in a Trainer of its own built from the run's trainer
settings; the callback sweeps in ``on_train_start``, restores everything and stops the fit before any training
epoch. Nothing is written anywhere: the caller decides (``result.save(run_dir)``, ``result.log_to(loggers)``,
``result.print()``).
"""
from __future__ import annotations

import copy
from typing import Any, Optional

import pytorch_lightning as pl

from callbacks.range_test.base import RangeTestCallback
from callbacks.range_test.engine import rngs_isolated
from callbacks.range_test.loss import LRRangeTest
from callbacks.range_test.result import RangeTestResult

__all__ = ["RangeTestResult", "RangeTestCallback", "find_lr"]


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
