"""Learning-rate range test (Smith 2015, 2018) as Lightning callbacks that leave nothing behind.

* :class:`LRRangeTest` -- the loss sweep: raise the LR after every optimizer step
  (exponentially or linearly from ``min_lr`` to ``max_lr``) until the smoothed loss
  blows up, then suggest a learning rate (see :mod:`callbacks.lr_suggestions`).
  L. N. Smith, "A disciplined approach to neural network hyper-parameters: Part 1"
  (2018), sec. 4.1; "Cyclical Learning Rates for Training Neural Networks" (2015), sec. 3.3.
* :class:`AccuracyRangeTest` -- Smith's original 2015 test: a linear ramp over a few
  epochs with validation accuracy measured every few steps; reports ``base_lr``
  (accuracy starts to rise) and ``max_lr`` (it stops rising, turns ragged or falls).

Both run inside ``on_train_start`` (optimizers, precision plugin and dataloaders exist
then) or whenever :meth:`~_RangeSweep.run` is called during ``fit``. Before the sweep they
snapshot everything training depends on -- parameters, buffers (BatchNorm statistics),
gradients, module train/eval flags, optimizer state and hyper-parameters, the AMP grad
scaler, the python/numpy/torch/CUDA RNGs, generators owned by the dataloaders and the
datamodule's ``state_dict()`` -- and restore it bitwise in a ``finally`` block, so a failed
sweep restores too. The sweep draws batches from its *own* iterator over the trainer's
train dataloader, so the epoch iterator Lightning has already created (with its first
batch pre-fetched) is untouched and the data order of training is unchanged.

After the sweep the found value is written to ``.max_lr`` of every callback in
``trainer.callbacks`` whose ``max_lr == "auto"`` (the ``scheduler.max_lr=auto`` wiring),
to ``pl_module.hparams["found_max_lr"]`` and to the loggers' hyper-parameters, and printed.
With ``stop_after=True`` (``task=lr_range_test``) training is skipped afterwards.

The sweep itself honours ``accumulate_grad_batches`` (one LR value per optimizer step),
gradient clipping, mixed precision (``precision_plugin.train_step_context`` and its grad
scaler) and DDP: gradients are averaged across ranks like DDP would, the recorded loss is
the mean over ranks (so every rank makes the same stop decision) and the chosen value is
broadcast from rank 0. Only automatic-optimization modules with DDP-style strategies
(single device, DDP, DDP-spawn) are supported; step-with-closure optimizers (LBFGS) are not.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import random
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.enums import GradClipAlgorithmType
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from callbacks.lr_suggestions import (
    SUGGESTIONS,
    accuracy_test_bounds,
    compute_suggestions,
    default_bandwidth,
    divergence_index,
    running_average,
)

__all__ = ["LRRangeTest", "AccuracyRangeTest", "lr_range_test", "sweep_lrs", "SWEEP_BATCH_ATTR"]

#: Minimum number of sweep points recorded before the stop; fewer means the loss
#: exploded right at the start (min_lr too high).
_MIN_POINTS = 3

#: A datamodule that defines this attribute (``None`` outside sweeps) gets it set to a running
#: count of the batches the sweep draws, just before each batch's transfer hooks run. Datamodules
#: that key their augmentation on the trainer's batch progress (which stands still during a
#: sweep) can mix it in so that sweep batches are not all augmented alike.
SWEEP_BATCH_ATTR = "range_test_batch"


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


# ---------------------------------------------------------------------------
# snapshot / restore
# ---------------------------------------------------------------------------
def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


class _Snapshot:
    """Everything a training run depends on, captured so it can be restored bitwise."""

    def __init__(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loaders: Sequence[Any]) -> None:
        self.trainer, self.pl_module = trainer, pl_module
        # parameters and buffers (incl. non-persistent ones), by owner + name, so that a
        # tensor re-assigned during the sweep is put back as the original object.
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
        self.optimizers = [(opt, self._capture_optimizer(opt)) for opt in trainer.optimizers]
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.scaler = (scaler, copy.deepcopy(scaler.state_dict())) if scaler is not None else None
        self.py_rng = random.getstate()
        self.np_rng = np.random.get_state()
        self.torch_rng = torch.get_rng_state()
        self.cuda_rng = (
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        )
        self.generators = [(g, g.get_state()) for g in _loader_generators(loaders)]
        dm = getattr(trainer, "datamodule", None)
        self.dm_state = None
        if dm is not None and hasattr(dm, "state_dict"):
            self.dm_state = (dm, copy.deepcopy(dm.state_dict()))
        self.dm_sweep_attr = (dm, getattr(dm, SWEEP_BATCH_ATTR)) if hasattr(dm, SWEEP_BATCH_ATTR) else None
        _BatchStream._served = 0
        self.stage = trainer.state.stage

    @staticmethod
    def _capture_optimizer(opt: torch.optim.Optimizer) -> Dict[str, Any]:
        state = {p: {k: _clone(v) for k, v in s.items()} for p, s in opt.state.items()}
        groups = [{k: _clone(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]
        return {"state": state, "groups": groups, "group_objs": list(opt.param_groups)}

    @staticmethod
    def _restore_optimizer(opt: torch.optim.Optimizer, snap: Dict[str, Any]) -> None:
        live = opt.state
        for p in [p for p in live.keys() if p not in snap["state"]]:
            del live[p]
        for p, saved in snap["state"].items():
            cur = live[p] if p in live else None
            new: Dict[str, Any] = {}
            for k, v in saved.items():
                old = cur.get(k) if cur is not None else None
                if (
                    isinstance(v, torch.Tensor)
                    and isinstance(old, torch.Tensor)
                    and old.shape == v.shape
                    and old.dtype == v.dtype
                    and old.device == v.device
                ):
                    old.copy_(v)
                    new[k] = old
                else:
                    new[k] = _clone(v)
            if cur is not None:
                cur.clear()
                cur.update(new)
            else:
                live[p] = new
        opt.param_groups[:] = snap["group_objs"]
        for g, saved in zip(opt.param_groups, snap["groups"]):
            for k in [k for k in g if k != "params" and k not in saved]:
                del g[k]
            for k, v in saved.items():
                g[k] = _clone(v)

    @torch.no_grad()
    def restore_training_state(self) -> None:
        """Weights, buffers, gradients, module modes, optimizers, grad scaler."""
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
        for opt, snap in self.optimizers:
            self._restore_optimizer(opt, snap)
        if self.scaler is not None:
            scaler, state = self.scaler
            scaler.load_state_dict(copy.deepcopy(state))

    def restore(self) -> None:
        """Everything, including RNGs, data generators, datamodule state and trainer stage."""
        self.restore_training_state()
        random.setstate(self.py_rng)
        np.random.set_state(self.np_rng)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        for g, state in self.generators:
            g.set_state(state)
        if self.dm_state is not None:
            dm, state = self.dm_state
            dm.load_state_dict(copy.deepcopy(state))
        if self.dm_sweep_attr is not None:
            dm, value = self.dm_sweep_attr
            setattr(dm, SWEEP_BATCH_ATTR, value)
        self.trainer.state.stage = self.stage


def _loader_generators(loaders: Sequence[Any]) -> List[torch.Generator]:
    """torch.Generators owned by dataloaders/samplers (their state drives the data order)."""
    gens: List[torch.Generator] = []
    for dl in loaders:
        for owner in (dl, getattr(dl, "sampler", None), getattr(getattr(dl, "batch_sampler", None), "sampler", None)):
            g = getattr(owner, "generator", None)
            if isinstance(g, torch.Generator) and all(g is not x for x in gens):
                gens.append(g)
    return gens


def _seed_all(seed: int) -> None:
    """Seed python/numpy/torch(CPU)/initialised CUDA without queuing lazy CUDA seeding."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def _flatten_loaders(loader: Any) -> List[Any]:
    if isinstance(loader, dict):
        return [x for v in loader.values() for x in _flatten_loaders(v)]
    if isinstance(loader, (list, tuple)):
        return [x for v in loader for x in _flatten_loaders(v)]
    return [loader] if loader is not None else []


def _first_loader(loader: Any) -> Any:
    flat = _flatten_loaders(loader)
    return flat[0] if flat else None


def _safe_len(loader: Any) -> Optional[int]:
    try:
        return len(loader)
    except (TypeError, NotImplementedError):
        return None


class _BatchStream:
    """Batches from a private iterator over ``loader``, prepared exactly as the training (or
    validation) loop prepares them; cycles the loader when it runs out."""

    _served = 0  # batches served by all streams of the current sweep (reset by _Snapshot)

    def __init__(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loader: Any, what: str) -> None:
        if loader is None:
            raise ValueError(f"LR range test: no {what} dataloader available")
        self.trainer, self.pl_module, self.what = trainer, pl_module, what
        self.loader = loader
        self._copy = None
        # A persistent-workers DataLoader hands out one shared iterator: iterating it here would
        # reset the epoch iterator Lightning already holds. Use a shallow copy with its own iterator.
        if getattr(loader, "persistent_workers", False) and getattr(loader, "num_workers", 0) > 0:
            self._copy = copy.copy(loader)
            self._copy._iterator = None
            self.loader = self._copy
        self.it: Optional[Iterator] = None
        self.cycles = 0

    def warn_if_short(self, needed: int) -> None:
        n = _safe_len(self.loader)
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
        trainer = self.trainer
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and hasattr(dm, SWEEP_BATCH_ATTR):
            # opt-in for datamodules whose augmentation is keyed on the trainer's progress (which does not
            # advance during a sweep): a running count of sweep batches, None again after the sweep
            setattr(dm, SWEEP_BATCH_ATTR, _BatchStream._served)
        _BatchStream._served += 1
        batch = trainer.precision_plugin.convert_input(batch)
        batch = self.pl_module._on_before_batch_transfer(batch, dataloader_idx=0)
        return trainer.strategy.batch_to_device(batch, dataloader_idx=0)

    def close(self) -> None:
        it, self.it = self.it, None
        if self._copy is not None:
            it = getattr(self._copy, "_iterator", None) or it
            self._copy._iterator = None
        shutdown = getattr(it, "_shutdown_workers", None)
        if callable(shutdown):
            shutdown()


@contextmanager
def _no_logging(pl_module: "pl.LightningModule"):
    """Temporarily make ``pl_module.log``/``log_dict`` no-ops (instance attributes shadow the methods)."""
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
            raise ValueError(
                "LR range test: a module with manual optimization must provide compute_loss(batch) -> Tensor"
            )
        with _no_logging(pl_module):
            out = pl_module.training_step(batch, batch_idx)
    if isinstance(out, dict):
        out = out.get("loss")
    if not isinstance(out, torch.Tensor):
        raise RuntimeError("LR range test: the training step returned no loss tensor")
    return out


def _distributed(trainer: "pl.Trainer") -> bool:
    return (
        trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()
    )


def _sync_gradients(trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
    """Average gradients across ranks, as DDP's reducer would (it is bypassed: we call the module directly)."""
    if not _distributed(trainer):
        return
    world = torch.distributed.get_world_size()
    for p in pl_module.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad.div_(world)


def _default_output_dir(trainer: "pl.Trainer") -> str:
    try:
        d = trainer.log_dir
    except Exception:  # pragma: no cover - loggers without a dir
        d = None
    return d or trainer.default_root_dir


def _tensorboard_experiments(trainer: "pl.Trainer") -> List[Any]:
    from pytorch_lightning.loggers import TensorBoardLogger

    return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


def _write_json(path: str, summary: Dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)


def _write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _set_auto(trainer: "pl.Trainer", attr: str, value: float, skip: Any) -> List[str]:
    """Set ``attr`` on every callback whose ``attr == "auto"``; return their class names."""
    hit = []
    for cb in trainer.callbacks:
        if cb is skip:
            continue
        cur = getattr(cb, attr, None)
        if isinstance(cur, str) and cur == "auto":
            setattr(cb, attr, float(value))
            hit.append(type(cb).__name__)
    return hit


def _record_hparams(trainer: "pl.Trainer", pl_module: "pl.LightningModule", params: Dict[str, Any]) -> None:
    try:
        pl_module.hparams.update(params)
    except Exception:  # pragma: no cover - exotic hparams containers
        pass
    if trainer.is_global_zero:
        for lg in trainer.loggers:
            try:
                lg.log_hyperparams(params)
            except Exception as err:  # pragma: no cover - logger specific
                rank_zero_warn(f"LR range test: could not log hyper-parameters to {type(lg).__name__}: {err}")


# ---------------------------------------------------------------------------
# shared sweep machinery
# ---------------------------------------------------------------------------
class _RangeSweep(pl.Callback):
    """Common machinery of the loss and the accuracy range tests."""

    name = "range_test"

    def __init__(
        self,
        min_lr: float,
        max_lr: float,
        num_steps: Optional[int],
        mode: str,
        diverge_factor: Optional[float],
        smooth_beta: float,
        seed: Optional[int],
        stop_after: bool,
        output_dir: Optional[str],
        verbose: bool,
    ) -> None:
        super().__init__()
        for key, val in (("min_lr", min_lr), ("max_lr", max_lr)):
            if not isinstance(val, (int, float)) or isinstance(val, bool) or not math.isfinite(val):
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
        if diverge_factor is not None and not (isinstance(diverge_factor, (int, float)) and diverge_factor > 1):
            raise ValueError(f"range_test.diverge_factor must be > 1 (or null), got {diverge_factor!r}")
        if not (isinstance(smooth_beta, (int, float)) and 0.0 <= smooth_beta < 1.0):
            raise ValueError(f"range_test.smooth_beta must be in [0, 1), got {smooth_beta!r}")
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"range_test.seed must be an integer or null, got {seed!r}")
        self.min_lr, self.max_lr = float(min_lr), float(max_lr)
        self.num_steps, self.mode = num_steps, mode
        self.diverge_factor = None if diverge_factor is None else float(diverge_factor)
        self.smooth_beta = float(smooth_beta)
        self.seed, self.stop_after = seed, bool(stop_after)
        self.output_dir, self.verbose = output_dir, verbose
        self.result: Optional[Dict[str, Any]] = None

    # -- Lightning hook -------------------------------------------------------
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.run(trainer, pl_module)

    # -- to be provided by subclasses ------------------------------------------
    def _sweep_all(self, trainer, pl_module, snapshot: _Snapshot) -> Dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def _finish(self, trainer, pl_module, result: Dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- public entry point ------------------------------------------------------
    def run(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> Dict[str, Any]:
        """Run the sweep now (any time during ``fit``), restore everything, analyse, wire ``auto``."""
        if not trainer.optimizers:
            raise RuntimeError("LR range test: the trainer has no optimizer (run it from on_train_start or later)")
        loaders = _flatten_loaders(trainer.train_dataloader) + _flatten_loaders(
            getattr(trainer, "val_dataloaders", None)
        )
        t0 = time.perf_counter()
        snapshot = _Snapshot(trainer, pl_module, loaders)
        try:
            with torch.enable_grad():
                result = self._sweep_all(trainer, pl_module, snapshot)
        finally:
            snapshot.restore()
        result["elapsed_s"] = time.perf_counter() - t0
        self._finish(trainer, pl_module, result)
        self.result = result
        if self.stop_after:
            trainer.should_stop = True
        return result

    # -- one optimizer step at a given LR -------------------------------------------
    def _train_step(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stream: _BatchStream, lr: float, idx: int
    ) -> Tuple[float, float]:
        """Set the LR, accumulate ``accumulate_grad_batches`` micro-batches, step.

        Returns ``(mean loss over ranks, this rank's loss)``; a non-finite loss is returned
        without stepping."""
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

    def _out_dir(self, trainer: "pl.Trainer") -> str:
        """Output folder; call it on every rank (``trainer.log_dir`` broadcasts)."""
        return str(self.output_dir or _default_output_dir(trainer))


# ---------------------------------------------------------------------------
# loss sweep
# ---------------------------------------------------------------------------
class LRRangeTest(_RangeSweep):
    """Smith's LR range test on the training loss (one LR value per optimizer step).

    Args:
        min_lr, max_lr: sweep range (``min_lr < max_lr``; ``min_lr > 0`` in exp mode).
        num_steps: optimizer steps in the sweep (>= 10); the sweep may stop earlier on divergence.
        mode: ``"exp"`` (log-spaced LRs, the usual choice) or ``"linear"``.
        diverge_factor: stop once the bias-corrected running average of the loss exceeds this
            multiple of its best value (``None``: only a non-finite loss stops the sweep).
        smooth_beta: beta of that running average (0.98, as in Smith's/fastai's finder).
        suggestion: which suggestion becomes "the" answer: ``"min_div10"``, ``"steepest"``, ``"valley"`` or
            ``"loss_min"`` (the LR at the loss minimum itself).
        repeats: run the sweep this many times with seeds ``seed, seed+1, ...`` (model restored in
            between); the answer is the geometric mean over repeats, and the spread is reported.
        seed: seed for the sweep's RNGs (data order, augmentation, dropout); ``None`` keeps the
            current streams. Training's own RNG state is restored afterwards either way.
        stop_after: end ``fit`` after the test (``task=lr_range_test``).
        output_dir: where PNG/CSV/JSON go; default ``trainer.log_dir`` or ``default_root_dir``.
        bandwidth: Gaussian bandwidth (decades of LR) of the zero-lag smoother, ``None`` = default.
        verbose: print the rich table and the found value.

    After :meth:`run`, ``self.result`` holds ``lrs``, ``losses``, ``smoothed``, ``suggestions``,
    ``chosen_lr`` ... and ``self.found_lr`` the chosen LR.
    """

    name = "lr_range_test"

    def __init__(
        self,
        min_lr: float = 1e-5,
        max_lr: float = 10.0,
        num_steps: int = 200,
        mode: str = "exp",
        diverge_factor: Optional[float] = 4.0,
        smooth_beta: float = 0.98,
        suggestion: str = "min_div10",
        repeats: int = 1,
        seed: Optional[int] = 0,
        stop_after: bool = False,
        output_dir: Optional[str] = None,
        bandwidth: Optional[float] = None,
        verbose: bool = True,
    ) -> None:
        if num_steps is None:
            raise ValueError("range_test.num_steps must be an integer >= 10, got None")
        super().__init__(
            min_lr, max_lr, num_steps, mode, diverge_factor, smooth_beta, seed, stop_after, output_dir, verbose
        )
        if suggestion not in SUGGESTIONS:
            raise ValueError(f"range_test.suggestion must be one of {list(SUGGESTIONS)}, got {suggestion!r}")
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise ValueError(f"range_test.repeats must be an integer >= 1, got {repeats!r}")
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"range_test.bandwidth must be > 0 (or null), got {bandwidth!r}")
        self.suggestion, self.repeats, self.bandwidth = suggestion, repeats, bandwidth
        self.found_lr: Optional[float] = None

    # -- sweep ---------------------------------------------------------------
    def _sweep_all(self, trainer, pl_module, snapshot: _Snapshot) -> Dict[str, Any]:
        lrs = sweep_lrs(self.min_lr, self.max_lr, self.num_steps, self.mode)
        accum = max(int(trainer.accumulate_grad_batches), 1)
        runs = []
        for r in range(self.repeats):
            if r > 0:
                snapshot.restore_training_state()
            if self.seed is not None:
                _seed_all(self.seed + r)
            stream = _BatchStream(trainer, pl_module, _first_loader(trainer.train_dataloader), "train")
            try:
                if r == 0:
                    stream.warn_if_short(self.num_steps * accum)
                runs.append(self._one_sweep(trainer, pl_module, stream, lrs))
            finally:
                stream.close()
        return {"runs": runs}

    def _one_sweep(self, trainer, pl_module, stream: _BatchStream, lrs: np.ndarray) -> Dict[str, Any]:
        losses: List[float] = []
        local: List[float] = []
        stop: Optional[int] = None
        for k, lr in enumerate(lrs):
            mean, mine = self._train_step(trainer, pl_module, stream, float(lr), k)
            losses.append(mean)
            local.append(mine)
            if k == 0 and not math.isfinite(mean):
                raise RuntimeError(
                    f"LR range test: the loss is {mean} at the very first step (lr={lr:.3g}); "
                    "lower range_test.min_lr (or check the model/data)"
                )
            if self.diverge_factor is not None:
                idx = divergence_index(losses, self.smooth_beta, self.diverge_factor)
            else:
                idx = None if math.isfinite(mean) else k
            if idx is not None:
                stop = idx
                break
        if stop is not None and stop < _MIN_POINTS:
            raise RuntimeError(
                f"LR range test: the loss exploded within the first {stop + 1} steps "
                f"(lr={lrs[stop]:.3g}, losses={[round(x, 4) for x in losses]}); lower range_test.min_lr"
            )
        return {"lrs": [float(x) for x in lrs[: len(losses)]], "losses": losses, "local_losses": local, "stop": stop}

    # -- analysis & outputs ------------------------------------------------------
    def _finish(self, trainer, pl_module, result: Dict[str, Any]) -> None:
        for run in result["runs"]:
            run["bandwidth"] = self.bandwidth or default_bandwidth(np.log10(run["lrs"]))
            sugg, smoothed = compute_suggestions(run["lrs"], run["losses"], run["bandwidth"])
            run["suggestions"] = sugg
            run["smoothed"] = [float(x) for x in smoothed]
            run["running_avg"] = [float(x) for x in running_average(run["losses"], self.smooth_beta)]
            if run["stop"] is None and int(np.nanargmin(smoothed)) >= len(smoothed) - 2:
                rank_zero_warn(
                    "LR range test: the loss was still falling at range_test.max_lr "
                    f"({self.max_lr:g}); raise max_lr for a meaningful suggestion"
                )
        if len(result["runs"]) > 1 and all(r["losses"] == result["runs"][0]["losses"] for r in result["runs"]):
            rank_zero_warn(
                "LR range test: all repeats gave identical loss curves; the data order and augmentation do not "
                "depend on range_test.seed, so repeats add nothing here (set repeats: 1)"
            )
        spread: Dict[str, Dict[str, Any]] = {}
        for name in SUGGESTIONS:
            vals = np.array([run["suggestions"][name] for run in result["runs"]], dtype=np.float64)
            spread[name] = {
                "values": vals.tolist(),
                "geomean": float(np.exp(np.mean(np.log(vals)))),
                "mean": float(vals.mean()),
                "std": float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
            }
        suggestions = {name: spread[name]["geomean"] for name in SUGGESTIONS}
        # identical on every rank in exact arithmetic (the losses are rank-averaged); broadcast anyway
        suggestions = trainer.strategy.broadcast(suggestions, src=0)
        chosen = float(suggestions[self.suggestion])
        first = result["runs"][0]
        result.update(
            {
                "lrs": first["lrs"],
                "losses": first["losses"],
                "smoothed": first["smoothed"],
                "stop": first["stop"],
                "suggestions": suggestions,
                "spread": spread,
                "suggestion": self.suggestion,
                "chosen_lr": chosen,
            }
        )
        self.found_lr = chosen
        wired = _set_auto(trainer, "max_lr", chosen, self)
        result["auto_callbacks"] = wired
        _record_hparams(trainer, pl_module, {"found_max_lr": chosen, "found_max_lr_rule": self.suggestion})
        out_dir = self._out_dir(trainer)  # on every rank: trainer.log_dir is a collective call
        if trainer.is_global_zero:
            os.makedirs(out_dir, exist_ok=True)
            self._write_outputs(trainer, result, out_dir)

    def _figure(self, result: Dict[str, Any]):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.5), dpi=110)
        ax = fig.add_subplot(1, 1, 1)
        tops, bottoms = [], []
        for r, run in enumerate(result["runs"]):
            lr, raw, sm = np.array(run["lrs"]), np.array(run["losses"]), np.array(run["smoothed"])
            lab = "" if len(result["runs"]) == 1 else f" (repeat {r})"
            ax.plot(lr, raw, color=f"C{r}", alpha=0.3, lw=0.8, label=f"raw loss{lab}")
            ax.plot(lr, sm, color=f"C{r}", lw=2.2, label=f"smoothed loss{lab}")
            fin = raw[np.isfinite(raw)]
            if fin.size:
                tops.append(min(float(fin.max()), max(float(sm[0]), float(np.max(sm[: int(np.argmin(sm)) + 1]))) * 1.3))
                bottoms.append(float(min(fin.min(), sm.min())))
        styles = {"min_div10": ("k", "--"), "steepest": ("tab:red", ":"), "valley": ("tab:green", "-."),
                  "loss_min": ("tab:purple", (0, (1, 3)))}
        for name in SUGGESTIONS:
            v = result["suggestions"][name]
            col, ls = styles[name]
            star = " (chosen)" if name == result["suggestion"] else ""
            ax.axvline(v, color=col, ls=ls, lw=1.5, label=f"{name} = {v:.3g}{star}")
        ax.set_xscale("log")
        if tops and bottoms and max(tops) > min(bottoms):
            pad = 0.05 * (max(tops) - min(bottoms))
            ax.set_ylim(min(bottoms) - pad, max(tops) + pad)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title(f"LR range test ({self.mode}, {self.min_lr:g} to {self.max_lr:g}, {self.num_steps} steps)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        return fig

    def _write_outputs(self, trainer: "pl.Trainer", result: Dict[str, Any], out: str) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = self._figure(result)
        FigureCanvasAgg(fig)
        png = os.path.join(out, "lr_range_test.png")
        fig.savefig(png)
        rows = []
        for r, run in enumerate(result["runs"]):
            for k, (lr, loss, sm, ra) in enumerate(zip(run["lrs"], run["losses"], run["smoothed"], run["running_avg"])):
                rows.append([k, repr(lr), repr(loss), repr(sm), repr(ra), r])
        csv_path = os.path.join(out, "lr_range_test.csv")
        _write_csv(csv_path, ["step", "lr", "loss", "smoothed_loss", "running_avg", "repeat"], rows)
        summary = {
            "mode": self.mode,
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "num_steps": self.num_steps,
            "diverge_factor": self.diverge_factor,
            "smooth_beta": self.smooth_beta,
            "seed": self.seed,
            "suggestion": self.suggestion,
            "chosen_lr": result["chosen_lr"],
            "suggestions": result["suggestions"],
            "repeats": [
                {
                    "seed": None if self.seed is None else self.seed + r,
                    "suggestions": run["suggestions"],
                    "stopped_at_step": run["stop"],
                    "bandwidth_decades": run["bandwidth"],
                    "num_points": len(run["losses"]),
                }
                for r, run in enumerate(result["runs"])
            ],
            "elapsed_s": result["elapsed_s"],
            "auto_callbacks": result["auto_callbacks"],
        }
        if len(result["runs"]) > 1:
            summary["spread"] = result["spread"]
        json_path = os.path.join(out, "lr_range_test.json")
        _write_json(json_path, summary)
        result["files"] = {"png": png, "csv": csv_path, "json": json_path}
        for exp in _tensorboard_experiments(trainer):
            exp.add_figure("lr_range_test/curve", fig, global_step=trainer.global_step, close=False)
            for r, run in enumerate(result["runs"]):
                pre = "lr_range_test" if r == 0 else f"lr_range_test/repeat_{r}"
                for k, (lr, loss, sm) in enumerate(zip(run["lrs"], run["losses"], run["smoothed"])):
                    if math.isfinite(loss):
                        exp.add_scalar(f"{pre}/loss", loss, global_step=k)
                    exp.add_scalar(f"{pre}/smoothed_loss", sm, global_step=k)
                    exp.add_scalar(f"{pre}/lr", lr, global_step=k)
            exp.flush()
        if self.verbose:
            self._print_table(result)

    def _print_table(self, result: Dict[str, Any]) -> None:
        from rich.console import Console
        from rich.table import Table

        multi = len(result["runs"]) > 1
        stop = "no divergence" if result["stop"] is None else f"diverged at step {result['stop']}"
        table = Table(title="LR range test", caption=f"{result['elapsed_s']:.1f} s, {stop}")
        table.add_column("suggestion")
        table.add_column("lr", justify="right")
        if multi:
            table.add_column("std over repeats", justify="right")
            table.add_column("values", justify="right")
        for name in SUGGESTIONS:
            mark = " *" if name == result["suggestion"] else ""
            row = [name + mark, f"{result['suggestions'][name]:.4g}"]
            if multi:
                sp = result["spread"][name]
                row += [f"{sp['std']:.3g}", ", ".join(f"{v:.3g}" for v in sp["values"])]
            table.add_row(*row)
        con = Console()
        con.print(table)
        con.print(f"[bold]found max_lr = {result['chosen_lr']:.4g}[/bold] ({result['suggestion']})")


# ---------------------------------------------------------------------------
# Smith 2015 accuracy test
# ---------------------------------------------------------------------------
class AccuracyRangeTest(_RangeSweep):
    """Smith's (2015, sec. 3.3) accuracy range test.

    The LR rises linearly from ``min_lr`` to ``max_lr`` over ``num_epochs`` epochs' worth of
    optimizer steps (or ``num_steps`` if given); every ``eval_every`` steps (and at the first
    and last step) validation accuracy is measured on the first ``eval_batches`` validation
    batches (model in eval mode, no augmentation, counts summed over DDP ranks). The rule in
    :func:`callbacks.lr_suggestions.accuracy_test_bounds` turns the (lr, accuracy) points into
    ``base_lr`` and ``max_lr``. ``max_lr`` is written into callbacks with ``max_lr == "auto"``
    (and ``base_lr`` into those with ``base_lr == "auto"``).

    Accuracy comes from ``pl_module.accuracy_counts(batch) -> (correct, total)`` if present,
    else from ``argmax(pl_module(x)) == y`` for ``(x, y)`` batches.
    """

    name = "accuracy_range_test"

    def __init__(
        self,
        min_lr: float = 0.0,
        max_lr: float = 1.0,
        num_epochs: float = 4.0,
        num_steps: Optional[int] = None,
        eval_every: Optional[int] = None,
        eval_batches: int = 4,
        diverge_factor: Optional[float] = None,
        smooth_beta: float = 0.98,
        bandwidth: Optional[float] = 0.0,
        seed: Optional[int] = 0,
        stop_after: bool = False,
        output_dir: Optional[str] = None,
        verbose: bool = True,
    ) -> None:
        super().__init__(
            min_lr, max_lr, num_steps, "linear", diverge_factor, smooth_beta, seed, stop_after, output_dir, verbose
        )
        if not (isinstance(num_epochs, (int, float)) and num_epochs > 0):
            raise ValueError(f"range_test.num_epochs must be > 0, got {num_epochs!r}")
        if eval_every is not None and (not isinstance(eval_every, int) or eval_every < 1):
            raise ValueError(f"range_test.eval_every must be an integer >= 1 (or null), got {eval_every!r}")
        if not isinstance(eval_batches, int) or eval_batches < 1:
            raise ValueError(f"range_test.eval_batches must be an integer >= 1, got {eval_batches!r}")
        if bandwidth is not None and bandwidth < 0:
            raise ValueError(f"range_test.bandwidth must be >= 0 (or null), got {bandwidth!r}")
        self.num_epochs, self.eval_every, self.eval_batches = float(num_epochs), eval_every, eval_batches
        self.bandwidth = bandwidth
        self.found_lr: Optional[float] = None
        self.base_lr: Optional[float] = None

    def _total_steps(self, trainer: "pl.Trainer") -> int:
        if self.num_steps is not None:
            return self.num_steps
        n = _safe_len(_first_loader(trainer.train_dataloader))
        if n is None:
            raise ValueError("range_test.num_steps is required when the train dataloader has no length")
        if isinstance(trainer.limit_train_batches, int):
            n = min(n, trainer.limit_train_batches)
        per_epoch = max(n // max(int(trainer.accumulate_grad_batches), 1), 1)
        total = int(round(self.num_epochs * per_epoch))
        if total < 10:
            raise ValueError(
                f"the accuracy test would have only {total} steps (< 10): raise range_test.num_epochs "
                "or set range_test.num_steps"
            )
        return total

    def _val_loader(self, trainer: "pl.Trainer") -> Any:
        loader = _first_loader(getattr(trainer, "val_dataloaders", None))
        if loader is None and getattr(trainer, "datamodule", None) is not None:
            loader = _first_loader(trainer.datamodule.val_dataloader())
        if loader is None:
            raise ValueError("the accuracy range test needs a validation dataloader")
        return loader

    @torch.no_grad()
    def _accuracy(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loader: Any) -> float:
        flags = [(m, m.training) for m in pl_module.modules()]
        stage = trainer.state.stage
        trainer.validating = True  # datamodule hooks must not apply training augmentation
        pl_module.eval()
        stream = _BatchStream(trainer, pl_module, loader, "validation")
        correct = torch.zeros((), dtype=torch.float64, device=pl_module.device)
        total = torch.zeros((), dtype=torch.float64, device=pl_module.device)
        try:
            n = _safe_len(loader)
            for _ in range(self.eval_batches if n is None else min(self.eval_batches, n)):
                batch = stream.next()
                with trainer.precision_plugin.val_step_context():
                    c, t = self._counts(pl_module, batch)
                correct += torch.as_tensor(c, dtype=torch.float64, device=correct.device)
                total += float(t)
        finally:
            stream.close()
            for m, f in flags:
                m.training = f
            trainer.state.stage = stage
        correct = trainer.strategy.reduce(correct, reduce_op="sum")
        total = trainer.strategy.reduce(total, reduce_op="sum")
        return float(correct / total) if float(total) > 0 else float("nan")

    @staticmethod
    def _counts(pl_module: "pl.LightningModule", batch: Any) -> Tuple[Any, Any]:
        counts = getattr(pl_module, "accuracy_counts", None)
        if callable(counts):
            return counts(batch)
        x, y = batch[0], batch[1]
        if not isinstance(y, torch.Tensor):
            raise ValueError("the accuracy range test needs pl_module.accuracy_counts(batch) for non-(x, y) batches")
        pred = pl_module(x).argmax(dim=-1)
        return (pred == y).sum(), y.numel()

    def _sweep_all(self, trainer, pl_module, snapshot: _Snapshot) -> Dict[str, Any]:
        total = self._total_steps(trainer)
        lrs = sweep_lrs(self.min_lr, self.max_lr, total, "linear")
        every = self.eval_every or max(1, total // 40)
        if self.seed is not None:
            _seed_all(self.seed)
        accum = max(int(trainer.accumulate_grad_batches), 1)
        val_loader = self._val_loader(trainer)
        stream = _BatchStream(trainer, pl_module, _first_loader(trainer.train_dataloader), "train")
        steps: List[int] = []
        step_lrs: List[float] = []
        losses: List[float] = []
        evals: List[Tuple[int, float, float]] = []  # (step, lr, acc)
        try:
            stream.warn_if_short(total * accum)
            evals.append((-1, float(lrs[0]), self._accuracy(trainer, pl_module, val_loader)))  # before any step
            for k, lr in enumerate(lrs):
                mean, _ = self._train_step(trainer, pl_module, stream, float(lr), k)
                steps.append(k)
                step_lrs.append(float(lr))
                losses.append(mean)
                if k == 0 and not math.isfinite(mean):
                    raise RuntimeError(
                        f"accuracy range test: the loss is {mean} at the very first step (lr={lr:.3g}); "
                        "lower range_test.min_lr"
                    )
                if not math.isfinite(mean):
                    break
                if self.diverge_factor is not None and divergence_index(
                    losses, self.smooth_beta, self.diverge_factor
                ) is not None:
                    break
                if (k + 1) % every == 0 or k == total - 1:
                    evals.append((k, float(lr), self._accuracy(trainer, pl_module, val_loader)))
        finally:
            stream.close()
        return {"steps": steps, "lrs": step_lrs, "losses": losses, "evals": evals, "eval_every": every}

    def _finish(self, trainer, pl_module, result: Dict[str, Any]) -> None:
        ev_lr = [e[1] for e in result["evals"]]
        ev_acc = [e[2] for e in result["evals"]]
        bounds = accuracy_test_bounds(ev_lr, ev_acc, bandwidth=self.bandwidth)
        bounds = trainer.strategy.broadcast(bounds, src=0)
        result.update(bounds)
        self.found_lr, self.base_lr = bounds["max_lr"], bounds["base_lr"]
        result["auto_callbacks"] = _set_auto(trainer, "max_lr", bounds["max_lr"], self)
        result["auto_base_callbacks"] = _set_auto(trainer, "base_lr", bounds["base_lr"], self)
        _record_hparams(
            trainer, pl_module, {"found_max_lr": bounds["max_lr"], "found_base_lr": bounds["base_lr"],
                                 "found_max_lr_rule": "accuracy_test"}
        )
        out_dir = self._out_dir(trainer)  # on every rank: trainer.log_dir is a collective call
        if trainer.is_global_zero:
            os.makedirs(out_dir, exist_ok=True)
            self._write_outputs(trainer, result, out_dir)

    def _write_outputs(self, trainer: "pl.Trainer", result: Dict[str, Any], out: str) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.5), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ev_lr = [e[1] for e in result["evals"]]
        ev_acc = [e[2] for e in result["evals"]]
        ax.plot(ev_lr, ev_acc, "o-", lw=2, label="validation accuracy")
        ax.axvline(result["base_lr"], color="tab:green", ls="--", label=f"base_lr = {result['base_lr']:.3g}")
        ax.axvline(result["max_lr"], color="tab:red", ls="--", label=f"max_lr = {result['max_lr']:.3g}")
        ax2 = ax.twinx()
        ax2.plot(result["lrs"], result["losses"], color="0.6", alpha=0.4, lw=0.8, label="training loss")
        ax2.set_ylabel("training loss")
        ax.set_xlabel("learning rate (linear ramp)")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"Accuracy range test (Smith 2015): {self.min_lr:g} to {self.max_lr:g}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        png = os.path.join(out, "accuracy_range_test.png")
        fig.savefig(png)
        csv_path = os.path.join(out, "accuracy_range_test.csv")
        acc_at = {e[0]: e[2] for e in result["evals"]}
        rows = [["-1", repr(result["evals"][0][1]), "", repr(result["evals"][0][2])]]
        rows += [
            [k, repr(lr), repr(loss), repr(acc_at[k]) if k in acc_at else ""]
            for k, lr, loss in zip(result["steps"], result["lrs"], result["losses"])
        ]
        _write_csv(csv_path, ["step", "lr", "loss", "val_acc"], rows)
        summary = {
            "min_lr": self.min_lr,
            "max_lr_swept": self.max_lr,
            "num_steps": len(result["lrs"]),
            "eval_every": result["eval_every"],
            "eval_batches": self.eval_batches,
            **{k: result[k] for k in ("base_lr", "max_lr", "peak_lr", "peak_acc", "start_acc")},
            "evals": [{"step": s, "lr": lr, "val_acc": a} for s, lr, a in result["evals"]],
            "elapsed_s": result["elapsed_s"],
            "auto_callbacks": result["auto_callbacks"],
        }
        json_path = os.path.join(out, "accuracy_range_test.json")
        _write_json(json_path, summary)
        result["files"] = {"png": png, "csv": csv_path, "json": json_path}
        for exp in _tensorboard_experiments(trainer):
            exp.add_figure("accuracy_range_test/curve", fig, global_step=trainer.global_step, close=False)
            for k, lr, loss in zip(result["steps"], result["lrs"], result["losses"]):
                if math.isfinite(loss):
                    exp.add_scalar("accuracy_range_test/loss", loss, global_step=k)
                exp.add_scalar("accuracy_range_test/lr", lr, global_step=k)
            for s, _, a in result["evals"]:
                exp.add_scalar("accuracy_range_test/val_acc", a, global_step=max(s, 0))
            exp.flush()
        if self.verbose:
            from rich.console import Console
            from rich.table import Table

            table = Table(title="Accuracy range test",
                          caption=f"{result['elapsed_s']:.1f} s, {len(result['lrs'])} steps")
            for col in ("base_lr", "max_lr", "peak_lr", "start_acc", "peak_acc"):
                table.add_column(col, justify="right")
            table.add_row(*(f"{result[c]:.4g}" for c in ("base_lr", "max_lr", "peak_lr", "start_acc", "peak_acc")))
            con = Console()
            con.print(table)
            con.print(f"[bold]found max_lr = {result['max_lr']:.4g}, base_lr = {result['base_lr']:.4g}[/bold]")


# ---------------------------------------------------------------------------
# plain function
# ---------------------------------------------------------------------------
def lr_range_test(
    model: "pl.LightningModule",
    datamodule: Optional["pl.LightningDataModule"] = None,
    train_dataloaders: Any = None,
    trainer_kwargs: Optional[Dict[str, Any]] = None,
    **range_test_kwargs: Any,
) -> Dict[str, Any]:
    """Run :class:`LRRangeTest` outside ``train.py``: builds a Trainer (``trainer_kwargs`` are
    passed through; no logger/checkpointing/progress bar by default), runs the sweep with
    ``stop_after=True`` and returns the result dict (``chosen_lr``, ``suggestions``, curve, files).
    The model is left exactly as it was."""
    range_test_kwargs["stop_after"] = True
    cb = LRRangeTest(**range_test_kwargs)
    kwargs = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  max_epochs=1, num_sanity_val_steps=0)
    kwargs.update(trainer_kwargs or {})
    kwargs["callbacks"] = [cb] + list(kwargs.get("callbacks") or [])
    trainer = pl.Trainer(**kwargs)
    trainer.fit(model, datamodule=datamodule, train_dataloaders=train_dataloaders)
    assert cb.result is not None
    return cb.result
