"""Predict class names for image files from a checkpoint alone (no training data, no training config).

    python train.py task=predict ckpt_path=CKPT data.predict_dir=DIR     # every image below DIR
    python train.py task=predict ckpt_path=CKPT data.predict_csv=FILE    # the image column of a CSV
    python train.py task=predict ckpt_path=CKPT data.predict_dir=DIR tta=true   # with test-time augmentation

writes ``<run dir>/predictions.csv``: the image path, then per attribute the predicted class name and its
probability (``<attr>``, ``<attr>_prob``). The checkpoint carries the backbone's arguments, the class names of
every attribute and the preprocessing (image size, resize mode, normalisation statistics); checkpoints written
by trainings on ``data=image_folder`` or ``data=csv`` have them. The model runs through Lightning's
``trainer.predict`` (the Classifier's ``predict_step``) on the configured trainer: its device and precision, with
its progress bar, on one device (so that one process writes the whole file).
"""
from __future__ import annotations

import csv
import logging
import os
import warnings
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from callbacks.run.task_trainer import task_trainer
from datamodules.csv_images import paths_root, read_csv, resolve_paths
from datamodules.image_cache import IMAGE_EXTENSIONS, decode_all, describe_bad, is_image_file
from datamodules.image_folder import list_class_folder
from lightning_modules.classifier import Classifier
from lightning_modules.networks import build_network
from lightning_modules.tta import asked_tta_level

log = logging.getLogger(__name__)


def load_predictor(ckpt_path: str, tta: bool = False) -> tuple[Classifier, dict]:
    """(model in eval mode on the CPU, data metadata) from a checkpoint; clear errors for unusable ones. ``tta``:
    the model predicts with test-time augmentation (the checkpoint's ``tta_level``; flip when it is 0)."""
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"ckpt_path: {ckpt_path} does not exist")
    # weights_only=False: Lightning checkpoints hold loop and callback state; load only checkpoints you trust
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    data = ckpt.get("data") or {}
    if not data.get("vocabularies"):
        raise ValueError(f"ckpt_path: {ckpt_path} has no vocabularies (class names per attribute), so predictions "
                         "cannot be named; train with data=image_folder or data=csv, whose checkpoints carry them")
    if not ckpt.get("backbone"):
        raise ValueError(f"ckpt_path: {ckpt_path} does not record its backbone's arguments (it was not built "
                         "with lightning_modules.networks.build_network)")
    heads = ckpt["hyper_parameters"]["heads"]
    sizes = {k: len(v) for k, v in data["vocabularies"].items()}
    if sizes != dict(heads):
        raise ValueError(f"ckpt_path: {ckpt_path}: vocabulary sizes {sizes} do not match the heads {dict(heads)}")
    tta_level = asked_tta_level(tta, ckpt["hyper_parameters"].get("tta_level", 0))
    model = Classifier(build_network(**ckpt["backbone"]), heads, tta_level=tta_level)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), data


def list_inputs(inputs: str, image_column: str | None = None, allow_outside_paths: bool = False,
                image_root: str | None = None) -> tuple[list[str], list[str]]:
    """(paths as written for the output, absolute paths) of a folder's images or of a CSV's image column, whose
    paths are relative to ``image_root`` (default: the CSV's folder), as for training."""
    if os.path.isdir(inputs):
        images, others = list_class_folder(inputs)
        shown = [os.path.relpath(p, inputs) for p in images]
        if not images:
            raise ValueError(f"data.predict_dir: {inputs} holds no images")
        if others:  # as training says of its class folders
            warnings.warn(f"data.predict_dir: ignoring {len(others)} file(s) that are not images "
                          f"({', '.join(IMAGE_EXTENSIONS)}), e.g. {[os.path.relpath(p, inputs) for p in others[:3]]}",
                          stacklevel=2)
        return shown, images
    if os.path.isfile(inputs) and inputs.lower().endswith(".csv"):
        columns, rows = read_csv(inputs, key="data.predict_csv")
        column = image_column or columns[0]
        if column not in columns:
            raise ValueError(f"data.image_column: {column!r} is not a column of {inputs}; its columns are {columns}")
        shown = [(row.get(column) or "").strip() for row in rows]
        return shown, resolve_paths(shown, paths_root(inputs, image_root), allow_outside_paths,
                                    f"data.predict_csv ({inputs})")
    if os.path.isfile(inputs) and is_image_file(inputs):
        return [inputs], [os.path.abspath(inputs)]
    what = "is neither a folder nor a CSV file" if os.path.exists(inputs) else "does not exist"
    raise FileNotFoundError(f"data.predict_dir / data.predict_csv: {inputs} {what}")


def normalised(images: list[torch.Tensor], mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A batch of uint8 images (C, H, W) -> float, normalised as in training (the prediction loader's collate)."""
    return (torch.stack(images).float() / 255 - mean) / std


def predict_to_csv(ckpt_path: str, inputs: str, out_csv: str, batch_size: int = 256, image_column: str | None = None,
                   allow_outside_paths: bool = False, skip_bad_images: bool = False,
                   decode_workers: int | None = None, tta: bool = False, trainer: pl.Trainer | None = None,
                   image_root: str | None = None) -> str:
    """Write ``out_csv`` with the predicted class name and probability per attribute for every input image, on
    ``trainer`` (default: one device, the GPU when there is one; no logger) with ``tta`` when asked."""
    model, data = load_predictor(ckpt_path, tta)
    shown, paths = list_inputs(inputs, image_column, allow_outside_paths, image_root)
    images, bad = decode_all(paths, data["image_size"], data["resize_mode"], decode_workers, description="predicting")
    if bad:
        text = describe_bad(shown, bad)
        if not skip_bad_images:
            raise ValueError(f"{inputs}: {text} are missing or do not decode; fix or remove them, or set "
                             "data.skip_bad_images=true to skip them")
        warnings.warn(f"data.skip_bad_images=true: skipping {text}", stacklevel=2)
    keep = np.array([i not in bad for i in range(len(paths))], bool)
    images, shown = images[keep], [s for s, k in zip(shown, keep) if k]
    collate = partial(normalised, mean=torch.tensor(data["mean"]).view(1, -1, 1, 1),
                      std=torch.tensor(data["std"]).view(1, -1, 1, 1))
    loader = DataLoader(torch.from_numpy(images), batch_size=batch_size, collate_fn=collate)
    trainer = trainer or pl.Trainer(devices=1, logger=False, enable_checkpointing=False, enable_model_summary=False)
    batches = trainer.predict(model, dataloaders=loader) if len(images) else []
    heads = list(data["vocabularies"])
    probs = {h: [b[h].cpu() for b in batches] for h in heads}
    os.makedirs(os.path.dirname(os.path.abspath(out_csv)), exist_ok=True)
    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path"] + [c for h in heads for c in (h, f"{h}_prob")])
        best = {h: torch.cat(probs[h]).max(1) if probs[h] else None for h in heads}
        for i, path in enumerate(shown):
            row = [path]
            for h in heads:
                p, idx = best[h]
                row += [data["vocabularies"][h][int(idx[i])], f"{float(p[i]):.6f}"]
            writer.writerow(row)
    return out_csv


def predict_from_config(cfg: DictConfig) -> str:
    """``task=predict``: ``ckpt_path`` and exactly one of ``data.predict_dir`` / ``data.predict_csv`` (train.py has
    set the machine: device fallback, precision, threads)."""
    if not cfg.get("ckpt_path"):
        raise ValueError("ckpt_path: task=predict needs ckpt_path=<checkpoint of a training run>")
    data = cfg.data
    given = [k for k in ("predict_dir", "predict_csv") if data.get(k)]
    if len(given) != 1:
        raise ValueError("task=predict needs exactly one of data.predict_dir=<folder> or data.predict_csv=<file>, "
                         f"got {given or 'neither'}")
    out = predict_to_csv(str(cfg.ckpt_path), str(data[given[0]]), str(cfg.predict.out_csv),
                         batch_size=int(cfg.predict.batch_size), image_column=data.get("image_column"),
                         allow_outside_paths=bool(data.get("allow_outside_paths", False)),
                         skip_bad_images=bool(data.get("skip_bad_images", False)),
                         decode_workers=data.get("decode_workers"), tta=cfg.get("tta", False),
                         image_root=data.get("image_root"),
                         trainer=task_trainer(cfg, devices=1, num_nodes=1, strategy="auto"))
    with open(out, newline="") as f:
        count = sum(1 for _ in csv.reader(f)) - 1
    log.info(f"predicted   {count} images from {data[given[0]]} with {cfg.ckpt_path}: {out}")  # console and train.log
    return out
