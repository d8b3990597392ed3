"""What a range test must leave behind as it found it: the one place that snapshots and restores training state.

:func:`preserved_state` snapshots on entry and puts everything back bitwise on exit, also when the body raises:

* the module: parameters and buffers (BatchNorm statistics, non-persistent buffers too; a tensor re-assigned
  during the sweep is put back as the original object), gradients, every submodule's train/eval flag;
* the datamodule's ``state_dict()`` (whatever decides its data order);
* the python, numpy, torch and (if already initialised) CUDA RNGs;
* with a ``trainer``: the optimizers' ``state_dict()`` (param groups with ``lr_scale`` and any other keys, and
  per-parameter state), the AMP grad scaler, the generators owned by the train/val dataloaders, and the trainer
  stage.

:func:`evaluating` switches to eval mode and the validating stage for the accuracy test's measurements and back.

It is used at two levels, with the same code: :func:`~callbacks.range_test.finder.find_lr` wraps its whole
``Trainer.fit`` (module, datamodule, RNGs: what Lightning's own fit changes around the callback -- ``setup``
hooks, data-dependent init in ``on_fit_start``, ``zero_grad``), and
:class:`~callbacks.range_test.base.RangeTestCallback` wraps the sweep itself (everything above, with the trainer:
the callback may run inside a user's own fit that goes on training afterwards).
"""
from __future__ import annotations

import copy
import random
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch

__all__ = ["TrainingSnapshot", "preserved_state", "evaluating", "cuda_in_use", "flatten_loaders"]


def cuda_in_use() -> bool:
    """CUDA is available and already initialised (querying its RNGs then initialises nothing)."""
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def flatten_loaders(loader: Any) -> List[Any]:
    """The loaders of a (possibly nested dict/list/tuple) collection of loaders, in order."""
    if isinstance(loader, dict):
        return [x for v in loader.values() for x in flatten_loaders(v)]
    if isinstance(loader, (list, tuple)):
        return [x for v in loader for x in flatten_loaders(v)]
    return [loader] if loader is not None else []


def _loader_generators(loaders: Sequence[Any]) -> List[torch.Generator]:
    """torch.Generators owned by dataloaders/samplers (their state drives the data order)."""
    gens: List[torch.Generator] = []
    for dl in loaders:
        for owner in (dl, getattr(dl, "sampler", None), getattr(getattr(dl, "batch_sampler", None), "sampler", None)):
            g = getattr(owner, "generator", None)
            if isinstance(g, torch.Generator) and all(g is not x for x in gens):
                gens.append(g)
    return gens


def _rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if cuda_in_use():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


class TrainingSnapshot:
    """Everything a run depends on (see the module docstring), taken at construction."""

    def __init__(self, module: torch.nn.Module, datamodule: Optional[Any] = None,
                 trainer: Optional["pl.Trainer"] = None) -> None:
        # parameters and buffers by owner + name (public named_* with recurse=False, duplicates kept), so that
        # a tensor re-assigned during the sweep is put back as the original object
        self.tensors: List[Tuple[torch.nn.Module, str, torch.Tensor, torch.Tensor]] = []
        self.grads: List[Tuple[torch.Tensor, Optional[torch.Tensor]]] = []
        self.flags = [(m, m.training) for m in module.modules()]
        seen: set = set()
        for m in module.modules():
            for name, t in m.named_parameters(recurse=False, remove_duplicate=False):
                self.tensors.append((m, name, t, t.detach().clone()))
                if id(t) not in seen:
                    seen.add(id(t))
                    self.grads.append((t, None if t.grad is None else t.grad.detach().clone()))
            for name, t in m.named_buffers(recurse=False, remove_duplicate=False):
                self.tensors.append((m, name, t, t.detach().clone()))
        self.dm_state = (datamodule, copy.deepcopy(datamodule.state_dict())) if datamodule is not None else None
        self.rngs = _rng_states()
        self.trainer = trainer
        self.optimizers: list = []
        self.scaler = None
        self.generators: list = []
        if trainer is not None:
            self._snapshot_trainer(trainer)

    def _snapshot_trainer(self, trainer: "pl.Trainer") -> None:
        # public state_dict()s; keys and state the sweep adds are dropped again on load (the schedules re-read
        # opt.param_groups every step)
        self.optimizers = [(opt, copy.deepcopy(opt.state_dict())) for opt in trainer.optimizers]
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.scaler = (scaler, copy.deepcopy(scaler.state_dict())) if scaler is not None else None
        loaders = flatten_loaders(trainer.train_dataloader) + flatten_loaders(trainer.val_dataloaders)
        self.generators = [(g, g.get_state()) for g in _loader_generators(loaders)]
        self.stage = trainer.state.stage

    @torch.no_grad()
    def restore_training_state(self) -> None:
        """Weights, buffers, gradients, module modes, optimizers, grad scaler (between repeats of a sweep)."""
        for m, name, obj, saved in self.tensors:
            setattr(m, name, obj)  # nn.Module.__setattr__ puts a parameter/buffer back under its name
            if obj.shape != saved.shape:  # resized in place by the sweep: reallocate
                obj.data = saved.clone()
            else:
                obj.copy_(saved)
        for p, g in self.grads:
            p.grad = None if g is None else g.clone()
        for m, flag in self.flags:
            m.training = flag
        for opt, state in self.optimizers:
            opt.load_state_dict(copy.deepcopy(state))
        if self.scaler is not None:
            scaler, state = self.scaler
            scaler.load_state_dict(copy.deepcopy(state))

    def restore(self) -> None:
        """The training state plus loader generators, datamodule state, RNGs and trainer stage."""
        self.restore_training_state()
        for g, state in self.generators:
            g.set_state(state)
        if self.dm_state is not None:
            dm, state = self.dm_state
            dm.load_state_dict(copy.deepcopy(state))
        _set_rng_states(self.rngs)
        if self.trainer is not None:
            self.trainer.state.stage = self.stage


@contextmanager
def preserved_state(module: torch.nn.Module, datamodule: Optional[Any] = None,
                    trainer: Optional["pl.Trainer"] = None) -> Iterator[TrainingSnapshot]:
    """Snapshot on entry, restore bitwise on exit -- also when the body raises (the exception propagates
    unchanged). Yields the snapshot (its :meth:`~TrainingSnapshot.restore_training_state` resets the model
    between repeats)."""
    snapshot = TrainingSnapshot(module, datamodule, trainer)
    try:
        yield snapshot
    finally:
        snapshot.restore()


@contextmanager
def evaluating(trainer: "pl.Trainer", module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and the trainer's validating stage for a while (the accuracy test's measurements inside the
    sweep); every submodule's flag and the stage are put back on exit, also when the body raises."""
    flags = [(m, m.training) for m in module.modules()]
    stage = trainer.state.stage
    trainer.validating = True
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
        trainer.state.stage = stage
