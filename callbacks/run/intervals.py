"""Lightning's logging and validation intervals against the run's length: where its defaults would leave a run of
short epochs (a small set of your own images) with few or no points of its training curve, or its val/ metrics
from weights before the last step."""
from __future__ import annotations

import math

import pytorch_lightning as pl
from omegaconf import DictConfig

from callbacks.schedules.lr_schedule import optimizer_steps_per_epoch


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


def validated_before_the_end(trainer: pl.Trainer, datamodule) -> bool:
    """Whether the fit's last validation ran before its last step, so its val/ metrics are not the final weights':
    a stop mid-epoch (``trainer.max_steps``), or a last epoch that ``check_val_every_n_epoch`` skipped (Lightning
    validates neither). Not with no validation split (or ``limit_val_batches=0``), nor with an interval in steps."""
    if not len(getattr(datamodule, "val_set", None) or []) or trainer.limit_val_batches == 0:
        return False
    every, per_epoch = trainer.check_val_every_n_epoch, optimizer_steps_per_epoch(trainer)
    if every is None or per_epoch is None:
        return False
    return trainer.global_step % per_epoch != 0 or trainer.current_epoch % every != 0
