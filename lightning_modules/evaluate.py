"""``task=eval``: a trained checkpoint's metrics on the validation and the test split, recorded like a training run's.

    python train.py task=eval ckpt_path=RUN/checkpoints/last.ckpt [model=... data.*=...] [tta=true]

The model is the configured one, as for a resume (the network must be the checkpoint's, so give the training run's
``model=``/``experiment=``), with the checkpoint's weights. The data is the configured data: the training run's, or
other data with the same heads and some or all of the class names (:func:`as_trained`: one's own image files are
decoded, normalised and numbered as the model was trained; other sources need the same image size).
Lightning's ``trainer.validate`` and ``trainer.test`` run on the configured trainer (device, precision). ``tta=true``
averages the model's test-time augmentation views (``model.tta_level``; flip when it is 0) on both splits.

Which images: ``eval_on=held_out`` evaluates the data's validation and test splits (its ``val/`` and ``test/``
folders, or the seeded fractions of a folder without them); ``eval_on=all`` every image of an image folder or CSV
(``ROOT/<class>/*``, or any split folders; a subset of the checkpoint's classes is fine), as the test split, so only
``test/`` metrics (the objective is the monitored metric's ``test/`` twin). ``eval_on=auto`` (the default): held out
on the data the checkpoint was trained on (the same ``data.root`` / ``data.csv_path``), all of other data.

Written to the run directory: ``result.json`` (status, per-head metrics such as ``val/acc`` and ``test/acc``, the
checkpoint, ``tta``, ``eval_on``), ``config.yaml``, each evaluated split's confusion matrices (``confusion_<head>.png``,
``confusion_test_<head>.png``) and, through the configured loggers, the metrics and figures (TensorBoard).
"""
from __future__ import annotations

import os
import time
import warnings

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from callbacks.run.config_checks import check_loggers, check_seed, instantiate_group, logger_configs
from callbacks.run.console import KeepWarnings, log, log_summary, print_config
from callbacks.run.hydra_job import job_overrides, short_name
from callbacks.run.result_file import write_config, write_result
from callbacks.run.task_trainer import task_trainer
from callbacks.run_config import (CHECKPOINT_KEY, check_same_classes, check_same_network, check_weights_fit,
                                  read_checkpoint)
from datamodules.file_images import FileImageDataModule
from lightning_modules.networks import network_name
from lightning_modules.tta import asked_tta_level


def evaluate_from_config(cfg: DictConfig, keep: KeepWarnings | None = None) -> float | None:
    """``task=eval`` (train.py has set the machine: device fallback, precision, threads); returns the monitored
    metric (``monitor``, e.g. val/acc)."""
    if not cfg.get("ckpt_path"):
        raise ValueError("ckpt_path: task=eval needs ckpt_path=<checkpoint of a training run>")
    started = time.time()
    check_seed(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    check_loggers(cfg)
    checkpoint = read_checkpoint(cfg.ckpt_path)  # a missing, truncated or foreign file fails now, with its name
    check_same_network(cfg.ckpt_path, checkpoint, cfg.model.backbone, resuming=False)
    tta_level = asked_tta_level(cfg.get("tta", False), cfg.model.get("tta_level", 0))

    every_image = evaluates_every_image(cfg, checkpoint, bool((checkpoint.get("data") or {}).get("mean")))
    datamodule = instantiate_group(cfg, "data", **as_trained(cfg, checkpoint, every_image))
    datamodule.prepare_data()
    datamodule.setup("validate")
    check_same_classes(cfg.ckpt_path, checkpoint, datamodule.checkpoint_metadata())

    model = instantiate_group(cfg, "model", heads=datamodule.heads, tta_level=tta_level, tta_on_val=tta_level > 0)
    check_weights_fit(cfg.ckpt_path, checkpoint, model)
    model.load_state_dict(checkpoint["state_dict"])

    os.makedirs(cfg.output_dir, exist_ok=True)
    write_config(cfg.output_dir, cfg)
    if cfg.print_config:
        print_config(cfg)
    evaluated = {"task": "eval", "checkpoint": os.path.abspath(str(cfg.ckpt_path)), "tta": tta_level > 0,
                 "tta_level": tta_level, "epochs": checkpoint.get("epoch"), "steps": checkpoint.get("global_step"),
                 "eval_on": "all" if every_image else "held_out"}
    del checkpoint
    log_eval_header(cfg, model, datamodule, evaluated)
    write_result(cfg.output_dir, status="running", reason="", overrides=job_overrides(), monitor=cfg.monitor,
                 monitor_mode=cfg.monitor_mode, run_dir=cfg.output_dir, **evaluated)

    trainer = task_trainer(cfg, [instantiate(c) for c in logger_configs(cfg).values()])
    metrics = {}
    phases = {"val": trainer.validate, "test": trainer.test}
    for split in evaluated_splits(every_image):
        scores = phases[split](model, datamodule=datamodule, verbose=False)[0]
        metrics.update({k: float(v) for k, v in scores.items()})
        model.log_confusion_matrices(split)
    objective = metrics.get(cfg.monitor.replace("val/", "test/", 1) if every_image else cfg.monitor)
    write_result(cfg.output_dir, status="completed", metrics=metrics, objective=objective,
                 wall_s=round(time.time() - started, 2))
    log_summary(cfg, "completed", metrics, started, keep, trainer.loggers)
    return objective


EVAL_ON = ("auto", "held_out", "all")


def evaluated_splits(every_image: bool) -> tuple[str, ...]:
    """The splits evaluated: the test split alone where it holds every image, else validation and test."""
    return ("test",) if every_image else ("val", "test")


#: the data keys that decide which of its own images a training run held out: on that data, task=eval takes the
#: checkpoint's (a CSV trained with data.split_column=fold, evaluated with the default, was split afresh at random:
#: training images were scored as held-out ones, silently)
SPLIT_KEYS = ("split_column", "stratify_on", "val_fraction", "test_fraction", "seed")


def as_trained(cfg: DictConfig, checkpoint: dict, every_image: bool) -> dict:
    """The datamodule arguments that make the data what the model was trained on (from the checkpoint's data
    metadata): its channel statistics; for one's own image files also its class numbering, its image size and
    resize mode (as task=predict takes them), on its own training data the split it held out (:data:`SPLIT_KEYS`,
    from its run config; a config that says otherwise is warned and overruled), and ``test_only`` where every
    image is evaluated."""
    saved = checkpoint.get("data") or {}
    kwargs = {"norm_stats": (saved["mean"], saved["std"])} if saved.get("mean") else {}
    if not issubclass(get_class(cfg.data._target_), FileImageDataModule) or not saved.get("vocabularies"):
        return kwargs
    kwargs.update(known_classes=saved["vocabularies"], test_only=every_image)
    trained = {key: saved[key] for key in ("image_size", "resize_mode") if saved.get(key) is not None}
    if not every_image:
        run_data = (checkpoint.get(CHECKPOINT_KEY) or {}).get("data") or {}
        trained.update({key: run_data[key] for key in SPLIT_KEYS if key in run_data and key in cfg.data})
    overruled = [f"data.{key}={cfg.data.get(key)} (trained: {value})" for key, value in trained.items()
                 if cfg.data.get(key) != value]
    if overruled:
        warnings.warn(f"task=eval reads the images as the checkpoint's model was trained (its image size and resize "
                      f"mode; on its training data, the split it held out): {', '.join(overruled)}", stacklevel=2)
    return {**kwargs, **trained}


def data_source(data: dict) -> str | None:
    """The folder or file a config of one's own images reads (its datamodule's ``source_key``: ``data.root``,
    ``data.csv_path``), as an absolute path."""
    where = data.get(get_class(data["_target_"]).source_key.split(".")[-1])
    return os.path.realpath(os.path.expanduser(str(where))) if where else None


def evaluates_every_image(cfg: DictConfig, checkpoint: dict, has_stats: bool) -> bool:
    """``eval_on``: ``all`` evaluates every image of the configured image folder or CSV; ``held_out`` its validation
    and test splits; ``auto`` every image of other data than the checkpoint was trained on, else held out."""
    mode = str(cfg.get("eval_on", "auto"))
    if mode not in EVAL_ON:
        raise ValueError(f"eval_on: unknown value {mode!r}; choose one of {list(EVAL_ON)}")
    files = issubclass(get_class(cfg.data._target_), FileImageDataModule)
    if mode == "all" and not (files and has_stats):
        raise ValueError("eval_on=all evaluates every image of an image folder or a CSV (data=image_folder or "
                         "data=csv) with a checkpoint written by train.py; use eval_on=held_out here")
    if mode != "auto" or not (files and has_stats):
        return mode == "all"
    # where the training data was: its absolute path as the training run's datamodule read it (checkpoints since
    # 2026-12-03), else its run config's path (relative ones resolve against this working directory)
    source = (checkpoint.get("data") or {}).get("source")
    if source is None:
        trained = (checkpoint.get(CHECKPOINT_KEY) or {}).get("data") or {}
        if trained.get("_target_") not in (None, cfg.data._target_):
            return True  # another kind of data
        source = data_source(trained) if trained.get("_target_") else None
    if source is None:  # cannot tell: the held-out splits, never training images counted as test ones
        return False
    return os.path.realpath(source) != data_source(dict(cfg.data))


def log_eval_header(cfg: DictConfig, model: pl.LightningModule, datamodule, evaluated: dict) -> None:
    """What is evaluated, on what: the checkpoint, the model, the data, the device and TTA."""
    every_image = evaluated["eval_on"] == "all"
    splits = [(name, getattr(datamodule, f"{name}_set", None)) for name in evaluated_splits(every_image)]
    sizes = " / ".join(f"{len(ds):,} {name}" for name, ds in splits if ds is not None)
    heads = ", ".join(f"{k}={v}" for k, v in datamodule.heads.items())
    level = evaluated["tta_level"]
    for line in (
        f"evaluate    {evaluated['checkpoint']} (epoch {evaluated['epochs']}, step {evaluated['steps']})",
        f"model       {network_name(cfg.model.backbone)}: {model.num_parameters():,} parameters, heads {heads}",
        f"data        {short_name(cfg.data.get('_target_'))}: {sizes} images, batch "
        f"{datamodule.eval_batch_size}, normalised with the "
        f"{'checkpoint' if datamodule.norm_stats is not None else 'training split'}'s channel statistics",
        f"device      {cfg.trainer.accelerator} x{cfg.trainer.devices}, precision {cfg.trainer.precision}, "
        f"threads {torch.get_num_threads()}",
        f"images      " + ("every image of the data, as the test split (eval_on=all; eval_on=held_out: its "
                             "validation and test splits)" if every_image else "the validation and test splits "
                             "(eval_on=held_out; eval_on=all: every image of other data)"),
        f"tta         {f'level {level}' if level else 'off'} (tta={str(level > 0).lower()})",
        f"run dir     {cfg.output_dir}",
    ):
        log.info(line)
