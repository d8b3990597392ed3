"""Lightning's logging and validation intervals against the run's length: where its defaults would leave a run of
short epochs (a small set of your own images) with few or no points of its training curve, or its val/ metrics
from weights before the last step."""
from __future__ import annotations

import math
from typing import Optional

import pytorch_lightning as pl
from omegaconf import DictConfig


def log_interval(trainer: DictConfig, datamodule) -> int:
    """``trainer.log_every_n_steps``, cut to an epoch's optimizer steps where an epoch is shorter. Lightning logs the
    train/ metrics every that many steps: 4 epochs of 2 batches at the default 10 drew no point at all (Lightning
    warns, and says to lower it). An epoch's batches are split over the processes (``trainer.devices`` x
    ``num_nodes``) under DDP. Unchanged without ``datamodule.steps_per_epoch`` or at 0 (no logging)."""
    configured = trainer.get("log_every_n_steps", 50)
    steps_per_epoch = getattr(datamodule, "steps_per_epoch", None)
    if not configured or not callable(steps_per_epoch):
        return configured
    batches = math.ceil(steps_per_epoch() / processes(trainer))  # DDP: each process gets its share of the batches
    limit = trainer.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = math.ceil(batches * limit)
    return max(1, min(configured, math.ceil(batches / max(int(trainer.get("accumulate_grad_batches", 1)), 1))))


def devices_per_node(trainer: DictConfig) -> int:
    """The training processes the config starts on each machine: ``devices`` (a count, or a list of device ids);
    1 for ``auto`` or ``-1``, whose count only the machine knows (before a Trainer exists)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, int):
        count = devices
    elif isinstance(devices, str):  # "2" a count, "0,1" device ids (as Lightning reads them), "auto" unknown
        count = int(devices) if devices.isdigit() else len(devices.split(",")) if "," in devices else 1
    else:
        count = len(devices)
    return max(count, 1)


def processes(trainer: DictConfig) -> int:
    """The training processes the config asks for: :func:`devices_per_node` x ``num_nodes``."""
    return devices_per_node(trainer) * max(int(trainer.get("num_nodes", 1) or 1), 1)


class ValidateLastStep(pl.Callback):
    """The run's val/ metrics, and the best checkpoint's score, from its last weights. Lightning validates at the end
    of an epoch and never at a stop mid-epoch (``trainer.max_steps``): the checkpoint callback then scored the last
    weights with an earlier epoch's val/ metrics or, with none yet, warned that the monitored key was never logged
    and kept no best checkpoint. At the step that reaches max_steps this asks the fit to stop
    (``trainer.should_stop``, public), which Lightning answers by validating first where its
    ``check_val_every_n_epoch`` lets it. ``stale()`` says whether the fit's last validation still came before its
    last step (an epoch that ``check_val_every_n_epoch`` skips): train.py then validates once more."""

    def __init__(self):
        self._trained_at: Optional[int] = None  # the global step after the fit's last training batch
        self._validated_at: Optional[int] = None  # the global step of its last validation (not the sanity check)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        self._trained_at = trainer.global_step
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated_at = trainer.global_step

    def stale(self, trainer: pl.Trainer, datamodule) -> bool:
        """Whether this fit trained after its last validation, on data with a validation split Lightning validates
        (not with ``limit_val_batches=0``). A resumed run that had already finished trains nothing: not stale."""
        if not len(getattr(datamodule, "val_set", None) or []) or trainer.limit_val_batches == 0:
            return False
        return self._trained_at is not None and self._validated_at != self._trained_at
