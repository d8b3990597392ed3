"""The run's resolved config travels in every checkpoint, so a resumed run knows what it was started with
(e.g. the LR a range test found for ``scheduler.max_lr=auto``) without running anything again."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

CHECKPOINT_KEY = "run_config"


class RunConfig(Callback):
    """Writes ``config`` (a plain, resolved dict) to ``checkpoint["run_config"]`` at every save."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.config


def read_checkpoint(ckpt_path: str) -> dict[str, Any]:
    """A checkpoint's contents, or a clear error naming ``ckpt_path`` when the file is missing, truncated or not a
    checkpoint at all (checked before anything is built)."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"ckpt_path: no such file {ckpt_path}") from None
    except Exception as err:  # truncated, not a torch file, or holding objects that are not plain data
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"ckpt_path: {ckpt_path} is not a readable checkpoint (truncated, or not written by "
                         f"torch/Lightning: {type(err).__name__}: {first_line})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"ckpt_path: {ckpt_path} is not a Lightning checkpoint (no state_dict in it)")
    return checkpoint


def saved_run_config(ckpt_path: str) -> dict[str, Any]:
    """The config a checkpoint was written with (for ``auto`` LRs on resume)."""
    checkpoint = read_checkpoint(ckpt_path)
    if CHECKPOINT_KEY not in checkpoint:
        raise ValueError(f"ckpt_path: {ckpt_path} holds no run config (it was not written by train.py); give the "
                         f"learning rates as numbers instead of 'auto' to resume from it")
    return checkpoint[CHECKPOINT_KEY]
