"""The LR range test as a phase of its own, whose result flows forward.

    result = find_lr(model, datamodule)   # sweeps, restores the model bitwise, returns a RangeTestResult
    result.lr                             # the chosen max LR (what scheduler.max_lr=auto becomes)
    result.plot()                         # a matplotlib Figure (notebooks)

:func:`find_lr` runs a range-test callback (:class:`~callbacks.loss_range_test.LRRangeTest` by default, or an
:class:`~callbacks.accuracy_range_test.AccuracyRangeTest`) in a Trainer of its own built from the run's trainer
settings; the callback sweeps in ``on_train_start``, restores everything and stops the fit before any training
epoch. Nothing is written anywhere: the caller decides (``result.save(run_dir)``, ``result.log_to(loggers)``,
``result.print()``).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl
from pytorch_lightning.utilities.seed import isolate_rng

from callbacks import range_test_report as report

__all__ = ["RangeTestResult", "find_lr"]


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


#: Trainer settings find_lr forces, whatever the caller passes.
_FORCED = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
               num_sanity_val_steps=0, min_epochs=None, min_steps=None)


def find_lr(
    model: "pl.LightningModule",
    datamodule: Optional["pl.LightningDataModule"] = None,
    range_test: Optional[pl.Callback] = None,
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
        # imported here: loss_range_test imports RangeTestResult from this module
        from callbacks.loss_range_test import LRRangeTest

        range_test = LRRangeTest()
    if not callable(getattr(range_test, "run", None)) or not hasattr(range_test, "result"):
        raise TypeError(f"find_lr: range_test must be an LRRangeTest or AccuracyRangeTest, got {type(range_test)}")
    trainer_kwargs.pop("callbacks", None)
    trainer = pl.Trainer(**{**trainer_kwargs, **_FORCED}, callbacks=[range_test])
    modes = [(m, m.training) for m in model.modules()]
    dm_state = copy.deepcopy(datamodule.state_dict()) if datamodule is not None else None
    range_test.result = None
    with isolate_rng():
        trainer.fit(model, train_dataloaders=train_dataloaders, val_dataloaders=val_dataloaders,
                    datamodule=datamodule)
    for m, flag in modes:
        m.training = flag
    if datamodule is not None:
        datamodule.load_state_dict(dm_state)
    if range_test.result is None:
        raise RuntimeError("find_lr: the range test did not run (no training batches? check limit_train_batches)")
    return range_test.result
