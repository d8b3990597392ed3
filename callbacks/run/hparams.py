"""What a run logs to TensorBoard's HParams dashboard: the values a researcher compares across runs (swept keys
first, then the recipe's key values), with the final metrics and the run's status."""
from __future__ import annotations

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger

from callbacks.run.hydra_job import job_overrides, scheduler_config, short_name
from lightning_modules.networks import network_name


# Overrides that say how a run was started, not what it trains: a resumed job would get a column its sweep's other
# jobs lack (TensorBoard's HParams table then splits the sweep)
NOT_HPARAMS = ("resume", "ckpt_path")


def tensorboard_hparams(cfg: DictConfig, lr_source: str, status: str) -> dict:
    """What a researcher compares across runs, swept keys first: not every config leaf."""
    flat = {}

    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}/")
            else:
                flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True))
    swept = [o.split("=", 1)[0].lstrip("+~").replace(".", "/") for o in job_overrides()
             if o.split("=", 1)[0].lstrip("+~") not in NOT_HPARAMS]
    chosen = {key: flat[key] for key in swept if key in flat}
    scheduler = scheduler_config(cfg)
    chosen.update({
        "network": network_name(cfg.model.backbone), "data": short_name(cfg.data.get("_target_")),
        "optimizer": short_name(cfg.optimizer.get("_target_")), "optimizer/lr": flat.get("optimizer/lr"),
        "optimizer/weight_decay": flat.get("optimizer/weight_decay"),
        "optimizer/momentum": flat.get("optimizer/momentum"),
        "schedule": short_name(scheduler.get("_target_")),
        **{f"scheduler/{k}": flat[f"scheduler/{k}"] for k in scheduler if not str(k).startswith("_")
           and f"scheduler/{k}" in flat},
        "scheduler/max_lr_source": lr_source, "data/batch_size": flat.get("data/batch_size"),
        "trainer/max_epochs": flat.get("trainer/max_epochs"), "trainer/max_steps": flat.get("trainer/max_steps"),
        "seed": cfg.seed, "status": status,
    })
    return {k: v for k, v in chosen.items() if v is not None}


def log_run_hparams(trainer: pl.Trainer, cfg: DictConfig, lr_source: str, status: str, metrics: dict) -> None:
    hparams = tensorboard_hparams(cfg, lr_source, status)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, metrics)
        else:
            logger.log_hyperparams(hparams)
        logger.save()
