"""Shared machinery of the LR range tests: run optimizer steps at chosen LRs, then leave no trace.

* :func:`preserved_training_state` -- snapshot everything training depends on (parameters, buffers such as
  BatchNorm statistics, gradients, module train/eval flags, optimizer state and param groups, the AMP grad
  scaler, generators owned by the dataloaders, the datamodule's ``state_dict()``, the trainer stage, and -- via
  Lightning's :func:`~pytorch_lightning.utilities.seed.isolate_rng` -- the python/numpy/torch/CUDA RNGs) and put
  it back bitwise on exit, also when the sweep fails.
* :class:`BatchStream` -- batches from a *private* iterator over a dataloader, prepared as the training loop
  prepares them (``convert_input``, the before-transfer hooks, ``strategy.batch_to_device``), so the epoch
  iterator Lightning holds (with its pre-fetched batch) and the data order of training are untouched.
* :func:`optimizer_step_at` -- one optimizer step at a given LR, honouring ``accumulate_grad_batches``, gradient
  clipping, the precision plugin (autocast, grad scaler), per-group ``lr_scale`` and DDP (gradients averaged
  across ranks, the recorded loss is the rank mean so every rank takes the same decisions).
* :func:`sweep_lrs`, :func:`seed_rngs`.

The callbacks built on this (and the phase that runs them) are in :mod:`callbacks.range_test.finder`,
:mod:`callbacks.range_test.loss` and :mod:`callbacks.range_test.accuracy`.

Only automatic-optimization modules (or modules with ``compute_loss(batch)``) on DDP-style strategies (single
device, DDP, DDP-spawn) are supported; step-with-closure optimizers (LBFGS) are not.
"""
from __future__ import annotations

import copy
import math
import random
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.enums import GradClipAlgorithmType
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from pytorch_lightning.utilities.seed import isolate_rng

__all__ = [
    "sweep_lrs",
    "seed_rngs",
    "preserved_training_state",
    "rngs_isolated",
    "TrainingSnapshot",
    "BatchStream",
    "optimizer_step_at",
    "first_loader",
    "safe_len",
]


def sweep_lrs(min_lr: float, max_lr: float, num_steps: int, mode: str = "exp") -> np.ndarray:
    """The LR of each sweep step: ``num_steps`` values from ``min_lr`` to ``max_lr`` inclusive,
    evenly spaced in log LR (``mode="exp"``) or in LR (``mode="linear"``)."""
    t = np.arange(num_steps, dtype=np.float64) / max(num_steps - 1, 1)
    if mode == "exp":
        lrs = min_lr * (max_lr / min_lr) ** t
    elif mode == "linear":
        lrs = min_lr + (max_lr - min_lr) * t
    else:
        raise ValueError(f"range_test.mode must be 'exp' or 'linear', got {mode!r}")
    lrs[0], lrs[-1] = min_lr, max_lr
    return lrs


def _cuda_in_use() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def seed_rngs(seed: int) -> None:
    """Seed python/numpy/torch (CPU) and, if already initialised, CUDA -- without queuing lazy CUDA seeding."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.default_generator.manual_seed(seed)
    if _cuda_in_use():
        torch.cuda.manual_seed_all(seed)


# ---------------------------------------------------------------------------------------------- snapshot / restore
def _flatten_loaders(loader: Any) -> List[Any]:
    if isinstance(loader, dict):
        return [x for v in loader.values() for x in _flatten_loaders(v)]
    if isinstance(loader, (list, tuple)):
        return [x for v in loader for x in _flatten_loaders(v)]
    return [loader] if loader is not None else []


def first_loader(loader: Any) -> Any:
    """The first DataLoader of a (possibly nested) collection of loaders, or None."""
    flat = _flatten_loaders(loader)
    return flat[0] if flat else None


def safe_len(loader: Any) -> Optional[int]:
    try:
        return len(loader)
    except (TypeError, NotImplementedError):
        return None


def _loader_generators(loaders: Sequence[Any]) -> List[torch.Generator]:
    """torch.Generators owned by dataloaders/samplers (their state drives the data order)."""
    gens: List[torch.Generator] = []
    for dl in loaders:
        for owner in (dl, getattr(dl, "sampler", None), getattr(getattr(dl, "batch_sampler", None), "sampler", None)):
            g = getattr(owner, "generator", None)
            if isinstance(g, torch.Generator) and all(g is not x for x in gens):
                gens.append(g)
    return gens


class TrainingSnapshot:
    """Everything (but the global RNGs, see :func:`preserved_training_state`) a run depends on."""

    def __init__(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.trainer = trainer
        # parameters and buffers (non-persistent ones too) by owner + name, so that a tensor re-assigned during
        # the sweep is put back as the original object
        self.tensors: List[Tuple[torch.nn.Module, str, str, torch.Tensor, torch.Tensor]] = []
        self.grads: List[Tuple[torch.Tensor, Optional[torch.Tensor]]] = []
        self.flags = [(m, m.training) for m in pl_module.modules()]
        seen: set = set()
        for m in pl_module.modules():
            for kind in ("_parameters", "_buffers"):
                for name, t in getattr(m, kind).items():
                    if t is None:
                        continue
                    self.tensors.append((m, kind, name, t, t.detach().clone()))
                    if kind == "_parameters" and id(t) not in seen:
                        seen.add(id(t))
                        self.grads.append((t, None if t.grad is None else t.grad.detach().clone()))
        # public state_dict()s: param groups (lr_scale and any other keys included) and per-parameter state; keys
        # and state the sweep adds are dropped again on load (the schedules re-read opt.param_groups every step)
        self.optimizers = [(opt, copy.deepcopy(opt.state_dict())) for opt in trainer.optimizers]
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.scaler = (scaler, copy.deepcopy(scaler.state_dict())) if scaler is not None else None
        loaders = _flatten_loaders(trainer.train_dataloader) + _flatten_loaders(trainer.val_dataloaders)
        self.generators = [(g, g.get_state()) for g in _loader_generators(loaders)]
        dm = trainer.datamodule
        self.dm_state = (dm, copy.deepcopy(dm.state_dict())) if dm is not None else None
        self.stage = trainer.state.stage

    @torch.no_grad()
    def restore_training_state(self) -> None:
        """Weights, buffers, gradients, module modes, optimizers, grad scaler (between repeats of a sweep)."""
        for m, kind, name, obj, saved in self.tensors:
            getattr(m, kind)[name] = obj
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
        """The training state plus loader generators, datamodule state and trainer stage."""
        self.restore_training_state()
        for g, state in self.generators:
            g.set_state(state)
        if self.dm_state is not None:
            dm, state = self.dm_state
            dm.load_state_dict(copy.deepcopy(state))
        self.trainer.state.stage = self.stage


@contextmanager
def rngs_isolated() -> Iterator[None]:
    """Lightning's :func:`~pytorch_lightning.utilities.seed.isolate_rng` (python, numpy, torch and -- if already
    initialised -- CUDA RNGs put back on exit), made to restore also when the body raises: ``isolate_rng``
    restores only on a normal exit, so the exception is kept inside it and re-raised after."""
    failure: Optional[BaseException] = None
    with isolate_rng(include_cuda=_cuda_in_use()):
        try:
            yield
        except BaseException as err:  # noqa: B036 - re-raised below, once the RNGs are back
            failure = err
    if failure is not None:
        raise failure


@contextmanager
def preserved_training_state(trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> Iterator[TrainingSnapshot]:
    """Snapshot on entry, restore bitwise on exit -- also when the body raises. Yields the snapshot (its
    :meth:`~TrainingSnapshot.restore_training_state` resets the model between repeats)."""
    snapshot = TrainingSnapshot(trainer, pl_module)
    try:
        with rngs_isolated():
            yield snapshot
    finally:
        snapshot.restore()


# ---------------------------------------------------------------------------------------------- private batches
def _independent_loader(loader: Any) -> Any:
    """A loader whose iterator is independent of the one Lightning holds.

    A persistent-workers DataLoader hands out one shared iterator (torch keeps it in the private
    ``DataLoader._iterator``, no public API): iterating it here would reset the epoch iterator Lightning already
    holds. A shallow copy with that attribute cleared gets its own workers."""
    if getattr(loader, "persistent_workers", False) and getattr(loader, "num_workers", 0) > 0:
        loader = copy.copy(loader)
        loader._iterator = None
    return loader


def _prepare_batch(trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any) -> Any:
    """Prepare a batch exactly as Lightning's training loop does before ``training_step``.

    ``LightningModule._on_before_batch_transfer`` is private, but it is the only way to run
    ``on_before_batch_transfer`` on whichever of module/datamodule overrides it (Lightning's own loops call it);
    the other two steps are public."""
    batch = trainer.precision_plugin.convert_input(batch)
    batch = pl_module._on_before_batch_transfer(batch, dataloader_idx=0)
    return trainer.strategy.batch_to_device(batch, dataloader_idx=0)


class BatchStream:
    """Prepared batches from a private iterator over ``loader``; cycles the loader when it runs out."""

    def __init__(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loader: Any, what: str) -> None:
        if loader is None:
            raise ValueError(f"LR range test: no {what} dataloader available")
        self.trainer, self.pl_module, self.what = trainer, pl_module, what
        self.loader = _independent_loader(loader)
        self._own_copy = self.loader is not loader
        self.it: Optional[Iterator] = None
        self.cycles = 0

    def warn_if_short(self, needed: int) -> None:
        n = safe_len(self.loader)
        if n == 0:
            raise ValueError(f"LR range test: the {self.what} dataloader is empty")
        if n is not None and n < needed:
            rank_zero_warn(
                f"LR range test: the {self.what} dataloader has {n} batches but the sweep needs {needed}; "
                "cycling it (batches will repeat)."
            )

    def next(self) -> Any:
        if self.it is None:
            self.it = iter(self.loader)
        try:
            batch = next(self.it)
        except StopIteration:
            self.cycles += 1
            self.it = iter(self.loader)
            try:
                batch = next(self.it)
            except StopIteration:
                raise ValueError(f"LR range test: the {self.what} dataloader is empty") from None
        return _prepare_batch(self.trainer, self.pl_module, batch)

    def close(self) -> None:
        """Drop the iterator (and our copy of a persistent-workers loader, which holds it): the last reference
        to a multi-process iterator going away shuts its worker processes down."""
        self.it = None
        if self._own_copy:
            self.loader = None


# ---------------------------------------------------------------------------------------------- one step
@contextmanager
def _no_logging(pl_module: "pl.LightningModule"):
    """Make ``pl_module.log``/``log_dict`` no-ops for a while (instance attributes shadow the methods)."""
    had = {k: k in pl_module.__dict__ for k in ("log", "log_dict")}
    old = {k: pl_module.__dict__.get(k) for k in had}
    pl_module.log = lambda *a, **k: None  # type: ignore[method-assign]
    pl_module.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        for k, present in had.items():
            if present:
                setattr(pl_module, k, old[k])
            else:
                delattr(pl_module, k)


def _module_loss(pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> torch.Tensor:
    compute = getattr(pl_module, "compute_loss", None)
    if callable(compute):
        out = compute(batch)
    else:
        if not pl_module.automatic_optimization:
            raise ValueError("LR range test: a module with manual optimization must provide compute_loss(batch)")
        with _no_logging(pl_module):
            out = pl_module.training_step(batch, batch_idx)
    if isinstance(out, dict):
        out = out.get("loss")
    if not isinstance(out, torch.Tensor):
        raise RuntimeError("LR range test: the training step returned no loss tensor")
    return out


def _sync_gradients(trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
    """Average gradients across ranks, as DDP's reducer would (it is bypassed: the module is called directly)."""
    if not (trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    for p in pl_module.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad.div_(world)


def optimizer_step_at(
    trainer: "pl.Trainer", pl_module: "pl.LightningModule", stream: BatchStream, lr: float, idx: int
) -> Tuple[float, float]:
    """Set every group's LR to ``lr * group.get("lr_scale", 1)``, accumulate ``accumulate_grad_batches``
    micro-batches, clip, step. Returns ``(mean loss over ranks, this rank's loss)``; a non-finite loss is
    returned without stepping."""
    optimizers = trainer.optimizers
    accum = max(int(trainer.accumulate_grad_batches), 1)
    precision = trainer.precision_plugin
    scaler = getattr(precision, "scaler", None)
    for opt in optimizers:
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        opt.zero_grad(set_to_none=True)
    local = None
    for micro in range(accum):
        batch = stream.next()
        with precision.train_step_context():
            loss = _module_loss(pl_module, batch, idx * accum + micro)
        value = loss.detach().float()
        local = value if local is None else local + value
        scaled = loss / accum
        if scaler is not None:
            scaled = scaler.scale(scaled)
        if torch.isfinite(value):
            scaled.backward()
    local = local / accum
    mean = trainer.strategy.reduce(local.clone(), reduce_op="mean")
    mean_f, local_f = float(mean), float(local)
    if not math.isfinite(mean_f):
        return mean_f, local_f
    _sync_gradients(trainer, pl_module)
    clip = trainer.gradient_clip_val
    for opt in optimizers:
        if clip:
            if scaler is not None:
                scaler.unscale_(opt)
            algo = GradClipAlgorithmType(trainer.gradient_clip_algorithm or "norm")
            precision.clip_gradients(opt, clip_val=clip, gradient_clip_algorithm=algo)
        if scaler is not None:
            scaler.step(opt)
        else:
            opt.step()
    if scaler is not None:
        scaler.update()
    return mean_f, local_f
