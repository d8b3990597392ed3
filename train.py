"""Train (or range-test) a classifier from a Hydra config.

    python train.py                                   # defaults: CIFAR-10, ResNet-9, one-cycle
    python train.py experiment=cifar10_resnet9        # Page's 24-epoch 94% recipe
    python train.py experiment=smoke                  # seconds on a CPU, synthetic data
    python train.py task=lr_range_test                # LR range test only
    python train.py scheduler.max_lr=auto             # range test, then one-cycle at the LR it found
    python train.py -m scheduler.max_lr=0.2,0.4,0.8 optimizer.weight_decay=5e-4,1e-3   # sweep

Reads top to bottom: seed; data; model; the LR range test when asked for (its result is written into the config,
so everything built afterwards, logged or saved sees the LR actually used); callbacks, loggers, trainer; fit; test.
"""
from __future__ import annotations

import os
import warnings

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from rich import print as rprint
from rich.syntax import Syntax
from rich.tree import Tree

from callbacks.lr_finder import RangeTestResult, find_lr
from callbacks.lr_schedule import LRSchedule
from callbacks.run_config import RunConfig, saved_run_config

AUTO_KEYS = ("max_lr", "base_lr")  # schedule keys the range test can fill in ("auto")


def fall_back_without_gpu(cfg: DictConfig) -> None:
    """A config that asks for a GPU (trainer=gpu/ddp) on a machine without one runs on the CPU instead, with a
    warning: fp32, no cudnn.benchmark, no channels_last or compile. Explicit CPU configs are left as they are."""
    if torch.cuda.is_available():
        return
    wants_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    fallbacks = {
        "trainer.accelerator": (wants_gpu, "cpu"),
        "trainer.precision": ("16" in str(cfg.trainer.get("precision")), "32-true"),
        "trainer.benchmark": (wants_gpu and bool(cfg.trainer.get("benchmark")), False),
        "speed.channels_last": (wants_gpu and bool(cfg.speed.get("channels_last")), False),
        "speed.compile": (wants_gpu and bool(cfg.speed.get("compile")), False),
    }
    changed = [f"{key}={value}" for key, (fall_back, value) in fallbacks.items() if fall_back]
    for key, (fall_back, value) in fallbacks.items():
        if fall_back:
            OmegaConf.update(cfg, key, value)
    if changed:
        warnings.warn(f"No CUDA GPU found: falling back to {', '.join(changed)}", stacklevel=2)


def print_config(cfg: DictConfig) -> None:
    tree = Tree("config", guide_style="dim")
    for key, node in cfg.items():
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark"))
    rprint(tree)


def auto_keys(cfg: DictConfig) -> list[str]:
    scheduler = cfg.get("scheduler") or {}
    return [key for key in AUTO_KEYS if scheduler.get(key) == "auto"]


def check_schedule(cfg: DictConfig) -> None:
    """Build the schedule once with stand-ins for its "auto" keys, so a bad shape fails now, not after a
    minutes-long range test."""
    if (cfg.get("scheduler") or {}).get("_target_"):
        stand_ins = {"max_lr": 1e9, "base_lr": 0.0}
        LRSchedule(instantiate(cfg.scheduler, **{key: stand_ins[key] for key in auto_keys(cfg)}))


def run_range_test(cfg: DictConfig, model: pl.LightningModule, datamodule: pl.LightningDataModule) -> RangeTestResult:
    """The range test as its own phase, on the run's trainer settings; the model comes back untouched."""
    trainer_kwargs = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k != "_target_"}
    result = find_lr(model, datamodule, instantiate(cfg.range_test), **trainer_kwargs)
    result.save(cfg.output_dir)
    result.print()
    return result


def resolve_auto_lrs(cfg: DictConfig, model: pl.LightningModule, datamodule: pl.LightningDataModule):
    """Write the LRs the schedule will use into the config, in place of "auto": from the checkpoint when resuming
    (the range test does not run again), else from a range test. Returns the range test's result, if one ran."""
    keys = auto_keys(cfg)
    if not keys:
        return None
    if cfg.ckpt_path:
        saved = saved_run_config(cfg.ckpt_path)["scheduler"]
        for key in keys:
            cfg.scheduler[key] = saved[key]
        return None
    result = run_range_test(cfg, model, datamodule)
    found = {"max_lr": result.lr, "base_lr": result.base_lr}
    for key in keys:
        if found[key] is None:
            raise ValueError(f"scheduler.{key}=auto needs range_test=accuracy (Smith's accuracy test reports base_lr); "
                             f"range_test={result.kind} reports only max_lr")
        cfg.scheduler[key] = float(found[key])
    return result


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks: list[pl.Callback] = [RunConfig(OmegaConf.to_container(cfg, resolve=True))]
    if (cfg.get("scheduler") or {}).get("_target_"):
        callbacks.append(LRSchedule(instantiate(cfg.scheduler), plot=cfg.plot_schedule))
    return callbacks + [instantiate(c) for c in cfg.callbacks.values() if c is not None]


def flat_hparams(cfg: DictConfig, lr_source: str) -> dict:
    """The flattened config (which holds the LRs actually used), plus where the peak LR came from."""
    flat = {}

    def walk(node, prefix=""):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}/")
            else:
                flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True))
    flat["scheduler/max_lr_source"] = lr_source
    return flat


def run(cfg: DictConfig) -> float | None:
    fall_back_without_gpu(cfg)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # missing or corrupt data fails here, before anything is built
    datamodule.setup("fit")

    model = instantiate(cfg.model, heads=datamodule.heads, optimizer=instantiate(cfg.optimizer))
    rprint(f"[bold]{cfg.model.backbone.name}[/bold]: {model.num_parameters():,} parameters")

    if cfg.task.name == "lr_range_test":
        return run_range_test(cfg, model, datamodule).lr
    check_schedule(cfg)
    asked = list(auto_keys(cfg))
    range_test = resolve_auto_lrs(cfg, model, datamodule)
    lr_source = (f"range_test ({range_test.rule})" if range_test else "checkpoint" if asked else "config")
    os.makedirs(cfg.output_dir, exist_ok=True)
    OmegaConf.save(cfg, os.path.join(cfg.output_dir, "config.yaml"), resolve=True)  # what ran; .hydra/: what was asked
    print_config(cfg)

    callbacks = build_callbacks(cfg)
    loggers = [instantiate(c) for c in cfg.logger.values() if c is not None]
    if range_test is not None:
        range_test.log_to(loggers)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    trainer.save_checkpoint(f"{cfg.output_dir}/checkpoints/last.ckpt")  # the final weights, even mid-epoch

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        metrics.update({k: float(v) for k, v in trainer.test(model, datamodule=datamodule)[0].items()})
    hp_metric = metrics.get("test/acc", metrics.get(cfg.monitor))
    hparams = flat_hparams(cfg, lr_source)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and hp_metric is not None:
            logger.log_hyperparams(hparams, {"hp_metric": hp_metric})
        else:
            logger.log_hyperparams(hparams)
        logger.save()
    return metrics.get(cfg.monitor)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
