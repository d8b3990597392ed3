"""What the range tests need from your LightningModule and LightningDataModule, written down once.

Each protocol's method docstrings say what the method must do; :func:`check_module` and :func:`check_data` read
them from here when they refuse a module or data that lack a required method
(:class:`RangeTestInterfaceError`, raised by :func:`~callbacks.range_test.finder.find_lr` before its fit starts
and by :meth:`RangeTestCallback.run <callbacks.range_test.base.RangeTestCallback.run>` before it sweeps).

Module -- required (:class:`RangeTestModule`): ``configure_optimizers`` and ``training_step``, as for any
Lightning fit. Optional: ``compute_loss`` (:class:`LossModule`; required with manual optimization),
``accuracy_counts`` (:class:`AccuracyModule`, the accuracy test) and ``chance_loss() -> float`` (the loss of a
constant prediction: a max_lr trial counts only when it ends below it, :mod:`callbacks.range_test.trials`). The batch hooks ``on_before_batch_transfer``,
``transfer_batch_to_device`` and ``on_after_batch_transfer`` run as in Lightning's loops, of the module or of the
datamodule (the datamodule's when both override one); the sweep's batches see ``trainer.training`` true, the
accuracy test's measurements ``trainer.validating`` true (apply training augmentation only in the first case).

Data -- required (:class:`RangeTestDataModule`): training batches (``train_dataloader`` of the datamodule or the
module, or ``train_dataloaders`` passed to ``find_lr``) and a ``state_dict``/``load_state_dict`` round trip;
the accuracy test also needs validation batches (:class:`AccuracyTestDataModule`; loaders that do not come from
a datamodule need a ``validation_step`` on the module, :class:`ValidatingModule`). Optional: validation batches
for the max_lr trials, read only after a trial that may have memorised the training set (v21,
:mod:`callbacks.range_test.trial_runs`), and ``validates_on_test`` (true where the validation loader is the test
split: then they read none). The range test calls nothing else: ``class_counts``, ``init_images`` and the like are
read by the project's ``Classifier``, not by it.

The protocols are ``runtime_checkable`` (``isinstance(module, LossModule)`` tells whether a method of that name
exists); whether a LightningModule *overrides* a hook that Lightning defines with a placeholder is what
:func:`provides` tells.
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, Tuple, runtime_checkable

import pytorch_lightning as pl
import torch

__all__ = [
    "RangeTestModule",
    "LossModule",
    "AccuracyModule",
    "RangeTestDataModule",
    "AccuracyTestDataModule",
    "ValidatingModule",
    "RangeTestInterfaceError",
    "provides",
    "check_module",
    "check_data",
]


@runtime_checkable
class RangeTestModule(Protocol):
    """Required of every module (Lightning's fit needs both too)."""

    def configure_optimizers(self) -> Any:
        """return the optimizer(s) the sweep drives: every optimizer step it sets each param group's ``lr`` to
        the sweep's LR times the group's optional ``lr_scale``"""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        """return the batch's loss (a tensor, or a dict with ``"loss"``); the loss test calls it (with
        ``self.log`` muted) when the module has no ``compute_loss``"""


@runtime_checkable
class LossModule(Protocol):
    """Optional (required with ``automatic_optimization = False``): the loss without side effects."""

    def compute_loss(self, batch: Any) -> torch.Tensor:
        """return the mean loss of a prepared batch as a scalar tensor, without logging or stepping an
        optimizer (the range test backpropagates it and steps itself)"""


@runtime_checkable
class AccuracyModule(Protocol):
    """Optional, for the accuracy test; without it accuracy is ``argmax(module(x)) == y`` on ``(x, y)`` batches."""

    def accuracy_counts(self, batch: Any) -> Tuple[Any, Any]:
        """return ``(correct, total)`` for a prepared validation batch (numbers or tensors; summed over batches
        and DDP ranks)"""


@runtime_checkable
class RangeTestDataModule(Protocol):
    """Required of a datamodule passed to ``find_lr`` (``LightningDataModule`` provides the state methods)."""

    def train_dataloader(self) -> Any:
        """return the training loader; the sweep reads its own iterator over it, so training's order is kept"""

    def state_dict(self) -> dict:
        """return everything that decides the data order (epoch, position, seeds), as in a checkpoint"""

    def load_state_dict(self, state: dict) -> None:
        """put back what ``state_dict`` returned (the range test restores it when it is done)"""


@runtime_checkable
class AccuracyTestDataModule(RangeTestDataModule, Protocol):
    """Required of a datamodule for the accuracy test (unless ``val_dataloaders`` are passed)."""

    def val_dataloader(self) -> Any:
        """return the validation loader; its first ``eval_batches`` batches are each accuracy point"""


@runtime_checkable
class ValidatingModule(Protocol):
    """Required for the accuracy test when its validation batches come from ``val_dataloaders`` passed to
    ``find_lr`` or from the module's own ``val_dataloader`` (not when they come from a datamodule)."""

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        """exist: Lightning gives the trainer those validation loaders only when the module has one (the range
        test itself never calls it)"""


class RangeTestInterfaceError(TypeError):
    """A module or datamodule lacks a method the range test needs."""


def provides(obj: Any, name: str, base: Optional[type] = None) -> bool:
    """``obj`` has a callable ``name``; with ``base`` (e.g. ``pl.LightningModule``), one that overrides
    ``base``'s placeholder when ``obj`` is a ``base`` (a method of a subclass or a function set on the
    instance, as ``LightningDataModule.from_datasets`` does)."""
    attr = getattr(obj, name, None)
    if not callable(attr):
        return False
    if base is None or not isinstance(obj, base):
        return True
    return getattr(attr, "__func__", attr) is not getattr(base, name, None)


def _duty(protocol: type, name: str) -> str:
    return " ".join(getattr(protocol, name).__doc__.replace("``", "").split())


def _refuse(what: Any, name: str, protocol: type, why: str = "") -> RangeTestInterfaceError:
    return RangeTestInterfaceError(
        f"LR range test: {type(what).__name__} has no {name}(){why}; the range test needs it to "
        f"{_duty(protocol, name)} (see callbacks/range_test/interface.py: {protocol.__name__})")


def check_module(module: Any) -> None:
    """Raise :class:`RangeTestInterfaceError` naming the first required method ``module`` lacks."""
    for name in ("configure_optimizers", "training_step"):
        if not provides(module, name, pl.LightningModule):
            raise _refuse(module, name, RangeTestModule)
    if not getattr(module, "automatic_optimization", True) and not provides(module, "compute_loss"):
        raise _refuse(module, "compute_loss", LossModule,
                      " and uses manual optimization (automatic_optimization = False), so its training_step "
                      "cannot stand in")


def check_data(module: Any, datamodule: Any = None, train_dataloaders: Any = None, val_dataloaders: Any = None,
               needs_validation: bool = False) -> None:
    """Raise :class:`RangeTestInterfaceError` when the data sources lack what the range test reads: training
    batches, a datamodule's state round trip, and validation batches for the accuracy test."""
    where = datamodule if datamodule is not None else module
    if train_dataloaders is None and not any(
            provides(x, "train_dataloader", _hooks_base(x)) for x in (datamodule, module) if x is not None):
        raise _refuse(where, "train_dataloader", RangeTestDataModule, " and no train_dataloaders were passed")
    if datamodule is not None:
        for name in ("state_dict", "load_state_dict"):
            if not provides(datamodule, name):
                raise _refuse(datamodule, name, RangeTestDataModule)
    if not needs_validation or (datamodule is not None and provides(datamodule, "val_dataloader",
                                                                    pl.LightningDataModule)):
        return
    if val_dataloaders is None and not provides(module, "val_dataloader", pl.LightningModule):
        raise _refuse(where, "val_dataloader", AccuracyTestDataModule,
                      " and no val_dataloaders were passed (the accuracy test measures validation accuracy)")
    if not provides(module, "validation_step", pl.LightningModule):
        raise _refuse(module, "validation_step", ValidatingModule,
                      " but its validation batches come from val_dataloaders or its own val_dataloader()")


def _hooks_base(obj: Any) -> Optional[type]:
    for base in (pl.LightningDataModule, pl.LightningModule):
        if isinstance(obj, base):
            return base
    return None
