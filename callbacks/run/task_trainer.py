"""The trainer of a task that does not train (``task=eval``, ``task=predict``): the configured one, so the device and
precision are the run's (train.py has resolved them for this machine), with only the progress bar among the
configured callbacks (checkpoints, LR monitor, divergence and Ctrl-C concern training)."""
from __future__ import annotations

import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ProgressBar


def progress_bars(cfg: DictConfig) -> list[ProgressBar]:
    """The configured progress bar (``callbacks.progress_bar``), if any; without one Lightning shows its default bar
    unless ``trainer.enable_progress_bar=false``, which also drops the configured one (Lightning refuses a progress-bar
    callback with bars off: task=predict stopped with its error)."""
    if cfg.trainer.get("enable_progress_bar") is False:
        return []
    configured = [c for c in (cfg.get("callbacks") or {}).values() if c is not None and c.get("_target_")]
    return [instantiate(c) for c in configured if issubclass(get_class(c._target_), ProgressBar)]


def task_trainer(cfg: DictConfig, loggers: list | None = None, **overrides) -> pl.Trainer:
    """``cfg.trainer`` with the progress bar and ``loggers`` (none: no logger), no checkpoints; ``overrides`` are
    Trainer arguments that replace the configured ones."""
    return instantiate(cfg.trainer, callbacks=progress_bars(cfg), logger=loggers or False,
                       enable_checkpointing=False, **overrides)
