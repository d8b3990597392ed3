"""Train (or range-test) a classifier from a Hydra config.

    python train.py                                   # defaults: CIFAR-10, ResNet-9, one-cycle
    python train.py experiment=cifar10_resnet9        # Page's 24-epoch 94% recipe
    python train.py experiment=smoke                  # seconds on a CPU, synthetic data
    python train.py task=lr_range_test                # LR range test only
    python train.py scheduler.max_lr=auto             # range test, then one-cycle at the suggested LR
    python train.py -m scheduler.max_lr=0.2,0.4,0.8 optimizer.weight_decay=5e-4,1e-3   # sweep
"""
from __future__ import annotations

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


def needs_range_test(cfg: DictConfig) -> bool:
    return cfg.task.name == "lr_range_test" or str((cfg.get("scheduler") or {}).get("max_lr")) == "auto"


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """Range test first (it must run before the schedule reads max_lr), then the schedule, then the rest."""
    callbacks = []
    if needs_range_test(cfg):
        callbacks.append(instantiate(cfg.range_test, stop_after=cfg.task.name == "lr_range_test"))
    if (cfg.get("scheduler") or {}).get("_target_"):
        callbacks.append(instantiate(cfg.scheduler))
    callbacks += [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    return callbacks


def final_hparams(cfg: DictConfig, callbacks: list[pl.Callback]) -> dict:
    """The flattened config, with the peak LR actually used when the range test chose it."""
    flat = {}

    def walk(node, prefix=""):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}/")
            else:
                flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True))
    for cb in callbacks:
        if isinstance(getattr(cb, "max_lr", None), (int, float)) and flat.get("scheduler/max_lr") == "auto":
            flat["scheduler/max_lr"] = float(cb.max_lr)
    return flat


def run(cfg: DictConfig) -> float | None:
    if cfg.task.name == "predict":  # prediction from a checkpoint alone: lightning_modules/predict.py
        from lightning_modules.predict import predict_from_config
        return predict_from_config(cfg)
    fall_back_without_gpu(cfg)
    print_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # missing or corrupt data fails here, before anything is built
    datamodule.setup("fit")

    model = instantiate(cfg.model, heads=datamodule.heads, optimizer=instantiate(cfg.optimizer))
    rprint(f"[bold]{cfg.model.backbone.name}[/bold]: {model.num_parameters():,} parameters")

    callbacks = build_callbacks(cfg)
    loggers = [instantiate(c) for c in cfg.logger.values() if c is not None]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    if cfg.task.name == "lr_range_test":
        return next((cb.found_lr for cb in callbacks if hasattr(cb, "found_lr")), None)
    trainer.save_checkpoint(f"{cfg.output_dir}/checkpoints/last.ckpt")  # the final weights, even mid-epoch

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        metrics.update({k: float(v) for k, v in trainer.test(model, datamodule=datamodule)[0].items()})
    hp_metric = metrics.get("test/acc", metrics.get(cfg.monitor))
    hparams = final_hparams(cfg, callbacks)
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
