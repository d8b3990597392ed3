"""Shared machinery of the LR range tests: run optimizer steps at chosen LRs on batches of their own.

* :class:`BatchStream` -- batches from a *private* iterator over a dataloader, prepared as the training loop
  prepares them (``convert_input``, the ``on_before_batch_transfer`` hook, ``strategy.batch_to_device``), so the
  epoch iterator Lightning holds (with its pre-fetched batch) and the data order of training are untouched.
* :func:`optimizer_step_at` -- one optimizer step at a given LR, honouring ``accumulate_grad_batches``, gradient
  clipping, the precision plugin (autocast, grad scaler), per-group ``lr_scale`` and DDP (gradients averaged
  across ranks, the recorded loss is the rank mean so every rank takes the same decisions).
* :func:`sweep_lrs`, :func:`seed_rngs`, :func:`first_loader`, :func:`safe_len`.

Leaving no trace is :mod:`callbacks.range_test.state`'s job; what a module and datamodule must provide is
written down in :mod:`callbacks.range_test.interface`. The callbacks built on this are in
:mod:`callbacks.range_test.loss` and :mod:`callbacks.range_test.accuracy`, the phase that runs them in
:mod:`callbacks.range_test.finder`.

Only automatic-optimization modules (or modules with ``compute_loss(batch)``) on DDP-style strategies (single
device, DDP, DDP-spawn) are supported; step-with-closure optimizers (LBFGS) are not.

Two private uses remain, each in one small function that says why: :func:`_independent_loader` (torch's
``DataLoader._iterator``) and :func:`_muted_logging` (shadows ``LightningModule.log``).
"""
from __future__ import annotations

import copy
import math
import random
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.enums import GradClipAlgorithmType
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from callbacks.range_test.interface import RangeTestInterfaceError, provides
from callbacks.range_test.state import cuda_in_use, evaluating, flatten_loaders

__all__ = [
    "sweep_lrs",
    "seed_rngs",
    "BatchStream",
    "optimizer_step_at",
    "first_loader",
    "safe_len",
    "val_loader",
    "correct_counts",
    "validation_scores",
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


def seed_rngs(seed: int) -> None:
    """Seed python/numpy/torch (CPU) and, if already initialised, CUDA -- without queuing lazy CUDA seeding."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.default_generator.manual_seed(seed)
    if cuda_in_use():
        torch.cuda.manual_seed_all(seed)


# ---------------------------------------------------------------------------------------------- private batches
def first_loader(loader: Any) -> Any:
    """The first DataLoader of a (possibly nested) collection of loaders, or None."""
    flat = flatten_loaders(loader)
    return flat[0] if flat else None


def safe_len(loader: Any) -> Optional[int]:
    try:
        return len(loader)
    except (TypeError, NotImplementedError):
        return None


def _independent_loader(loader: Any) -> Any:
    """A loader whose iterator is independent of the one Lightning holds.

    Private API, torch's: a persistent-workers DataLoader hands out one shared iterator, kept in
    ``DataLoader._iterator``; iterating it here would reset the epoch iterator Lightning already holds. torch has
    no public way to ask a DataLoader for a second iterator, and rebuilding the loader from its arguments would
    lose a subclass's own state; a shallow copy with that attribute cleared gets its own workers."""
    if getattr(loader, "persistent_workers", False) and getattr(loader, "num_workers", 0) > 0:
        loader = copy.copy(loader)
        loader._iterator = None
    return loader


def _prepare_batch(trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any) -> Any:
    """Prepare a batch exactly as Lightning's training loop does before ``training_step``: the precision
    plugin's ``convert_input``, the public ``on_before_batch_transfer`` hook of whichever runs it in Lightning
    (the datamodule when it overrides the hook, else the module), then ``strategy.batch_to_device``, which runs
    ``transfer_batch_to_device`` and ``on_after_batch_transfer`` by the same rule."""
    batch = trainer.precision_plugin.convert_input(batch)
    dm = trainer.datamodule
    owner = dm if dm is not None and provides(dm, "on_before_batch_transfer", pl.LightningDataModule) else pl_module
    batch = owner.on_before_batch_transfer(batch, 0)
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
def _muted_logging(pl_module: "pl.LightningModule"):
    """Make ``pl_module.log``/``log_dict`` no-ops while the sweep calls ``training_step`` (instance attributes
    shadow the methods; removed again on exit).

    Why not public API: ``LightningModule.log`` has no option that turns it off, and called from
    ``on_train_start`` it would record the sweep's losses into the fit's epoch metrics (or raise for
    ``on_step=True``, which that hook does not allow). Detaching the trainer (the public ``trainer`` setter)
    would silence it too, but would break every ``training_step`` that reads ``self.trainer``."""
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
    """``compute_loss(batch)`` if the module has one, else its ``training_step`` with logging muted (automatic
    optimization only; :func:`~callbacks.range_test.interface.check_module` refuses the rest up front)."""
    compute = getattr(pl_module, "compute_loss", None)
    if callable(compute):
        out = compute(batch)
    else:
        with _muted_logging(pl_module):
            out = pl_module.training_step(batch, batch_idx)
    if isinstance(out, dict):
        out = out.get("loss")
    if not isinstance(out, torch.Tensor):
        raise RuntimeError("LR range test: the training step returned no loss tensor")
    return out


def val_loader(trainer: "pl.Trainer") -> Any:
    """The first validation DataLoader (the trainer's, else the datamodule's); a ValueError without one."""
    loader = first_loader(trainer.val_dataloaders)
    if loader is None and trainer.datamodule is not None:
        loader = first_loader(trainer.datamodule.val_dataloader())
    if loader is None:
        raise ValueError("this range test needs a validation dataloader")
    return loader


def correct_counts(pl_module: "pl.LightningModule", batch: Any) -> Tuple[Any, Any]:
    """(correct predictions, predictions) in ``batch``: ``pl_module.accuracy_counts(batch)`` if the module has it,
    else ``argmax(pl_module(x)) == y`` for an ``(x, y)`` batch."""
    counts = getattr(pl_module, "accuracy_counts", None)
    if callable(counts):
        return counts(batch)
    pair = isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[1], torch.Tensor)
    if not pair:  # a dict batch or another shape: only the module knows its inputs and labels
        raise RangeTestInterfaceError(
            f"{type(pl_module).__name__}: measuring accuracy (the accuracy range test, the trials' validation) "
            f"needs accuracy_counts(batch) -> (correct, predictions) for batches that are not (x, y) pairs; got a "
            f"{type(batch).__name__} batch")
    x, y = batch[0], batch[1]
    return (pl_module(x).argmax(dim=-1) == y).sum(), y.numel()


@torch.no_grad()
def validation_scores(trainer: "pl.Trainer", pl_module: "pl.LightningModule", loader: Any,
                      batches: int, with_loss: bool = True) -> Tuple[float, float, int]:
    """(mean loss, accuracy, predictions counted) over the first ``batches`` batches of ``loader`` (all of them if
    it has fewer), in eval mode and the validating stage (datamodule hooks apply no training augmentation), summed
    over DDP ranks. The loss is the module's training loss (:func:`_module_loss`) on those batches; without
    ``with_loss`` it is not computed (nan), which saves a forward pass per batch."""
    stream = BatchStream(trainer, pl_module, loader, "validation")
    n = safe_len(loader)
    sums = torch.zeros(4, dtype=torch.float64, device=pl_module.device)  # loss sum, batches, correct, predictions
    with evaluating(trainer, pl_module):
        try:
            for k in range(batches if n is None else min(batches, n)):
                batch = stream.next()
                with trainer.precision_plugin.val_step_context():
                    loss = _module_loss(pl_module, batch, k) if with_loss else torch.zeros(())
                    correct, total = correct_counts(pl_module, batch)
                sums += torch.stack([loss.detach().double().to(sums.device),
                                     torch.ones((), dtype=torch.float64, device=sums.device),
                                     torch.as_tensor(correct, dtype=torch.float64, device=sums.device),
                                     torch.as_tensor(float(total), dtype=torch.float64, device=sums.device)])
        finally:
            stream.close()
    loss_sum, count, correct, total = trainer.strategy.reduce(sums, reduce_op="sum").tolist()
    return (loss_sum / count if count and with_loss else math.nan, correct / total if total else math.nan,
            int(round(total)))


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
