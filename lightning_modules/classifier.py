"""One image classifier: a backbone and one or more classification heads (one per attribute)."""
from __future__ import annotations

from typing import Callable, Mapping

import pytorch_lightning as pl
import torch
from torch import nn

from lightning_modules.classifier_loss import (ClassifierLoss, check_class_weights, check_loss_weights,
                                              resolve_class_weights)
from lightning_modules.classifier_metrics import ClassifierMetrics
from lightning_modules.networks import count_parameters
from lightning_modules.tta import TTA_LEVELS, tta_logits

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


class Classifier(ClassifierLoss, ClassifierMetrics, pl.LightningModule):
    """Cross-entropy classifier with one head per attribute.

    Args:
        backbone: images -> features, with ``feature_dim`` and ``make_head(num_classes)`` (see networks.py).
        heads: head name -> number of classes, e.g. ``{"label": 10}``; batches carry labels as a tensor (one head)
            or a dict keyed by head name.
        optimizer: partial optimizer constructor taking parameter groups (Hydra ``_partial_: true``).
        label_smoothing: cross-entropy label smoothing (0 = off).
        tta_level: test-time augmentation at test: 0 none, 1 flip, 2 flip + 1-pixel translations (airbench).
        tta_on_val: use the same TTA for validation too (costs 2x/6x validation time).
        exclude_norm_and_bias_from_wd: no weight decay on normalisation parameters and biases.
        norm_lr_scale: LR multiplier for normalisation-layer parameters (airbench trains BN biases at 64x LR);
            their weight decay is divided by the same factor so the decay per step (lr x wd) is unchanged.
        channels_last: NHWC memory format for the network and inputs.
        compile: ``torch.compile`` the backbone (GPU; falls back to eager where compile is unavailable).
        loss_weights: head -> weight of its cross-entropy in the summed loss (default 1 each).
        class_weights: head -> per-class cross-entropy weights, a list or ``balanced`` (n / (k x n_class) from the
            datamodule's training ``class_counts``); ``balanced`` alone applies it to every head.

    Metrics and their names: :class:`~lightning_modules.classifier_metrics.ClassifierMetrics` (at the end of fit each
    head's validation confusion matrix goes to TensorBoard and the run folder).
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, int], optimizer: Callable | None = None,
                 label_smoothing: float = 0.0, tta_level: int = 0, tta_on_val: bool = False,
                 exclude_norm_and_bias_from_wd: bool = False, norm_lr_scale: float = 1.0,
                 channels_last: bool = False, compile: bool = False, loss_weights: Mapping[str, float] | None = None,
                 class_weights: Mapping[str, object] | str | None = None):
        super().__init__()
        _check_arguments(heads, label_smoothing, tta_level, norm_lr_scale)
        heads = {str(name): int(n) for name, n in heads.items()}  # plain types: checkpoints load with weights_only
        loss_weights = check_loss_weights(loss_weights, heads)
        class_weights = check_class_weights(class_weights, heads)
        self.save_hyperparameters(ignore=["backbone", "optimizer"], logger=False)
        self.backbone = backbone
        self.head_names = list(heads)
        self.heads = nn.ModuleDict({name: backbone.make_head(int(n)) for name, n in heads.items()})
        self.make_metrics(heads)
        self.optimizer_factory = optimizer
        self.label_smoothing, self.tta_level, self.tta_on_val = label_smoothing, tta_level, tta_on_val
        self.channels_last, self.compile = channels_last, compile
        self.loss_weights = loss_weights
        self.class_weights: dict[str, torch.Tensor] = {}  # resolved in setup ("balanced" needs the data)
        self._compiled_backbone = None

    # -- model ----------------------------------------------------------------------------------------------------
    def num_parameters(self) -> int:
        return count_parameters(self)

    def attached_datamodule(self):
        """The trainer's datamodule; None without one, or when no trainer is attached (a module used on its
        own). Lightning's public ``trainer`` property raises rather than return None there, and the attribute
        behind it (``_trainer``) is private."""
        try:
            trainer = self.trainer
        except RuntimeError:  # "... is not attached to a `Trainer`"
            return None
        return getattr(trainer, "datamodule", None)

    def setup(self, stage: str) -> None:
        self.class_weights = resolve_class_weights(self.hparams.class_weights, self.attached_datamodule())
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile and self._compiled_backbone is None:
            # kept out of the module tree so checkpoints hold the plain backbone's keys
            self.__dict__["_compiled_backbone"] = torch.compile(self.backbone)

    def logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # `is None`, not `or`: truth-testing a compiled Sequential-like backbone calls its len(), which it refuses
        backbone = self.backbone if self._compiled_backbone is None else self._compiled_backbone
        features = backbone(x)
        return {name: head(features) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.logits(x)

    def _targets(self, y) -> dict[str, torch.Tensor]:
        if isinstance(y, Mapping):
            return {name: y[name] for name in self.head_names}
        if len(self.head_names) != 1:
            raise ValueError(f"batch labels are one tensor but the model has heads {self.head_names}")
        return {self.head_names[0]: y}

    def _tta_logits(self, x: torch.Tensor, level: int) -> dict[str, torch.Tensor]:
        return self.logits(x) if level == 0 else tta_logits(self.logits, x, level)

    # -- steps ----------------------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, y = batch
        logits, targets = self.logits(x), self._targets(y)
        loss = self.loss_from_logits(logits, targets)
        self._log_step("train", loss, logits, targets, len(x), on_step=True)
        return loss

    def _eval_step(self, split: str, batch, tta_level: int):
        x, y = batch
        logits, targets = self._tta_logits(x, tta_level), self._targets(y)
        loss = self.loss_from_logits(logits, targets)
        self._log_step(split, loss, logits, targets, len(x), on_step=False)
        return logits, targets

    def _update_confusion(self, logits, targets) -> None:
        for name in self.head_names:
            self.confusion[name].update(logits[name].detach().argmax(1), targets[name])

    def validation_step(self, batch, batch_idx):
        self._update_confusion(*self._eval_step("val", batch, self.tta_level if self.tta_on_val else 0))

    def test_step(self, batch, batch_idx):
        self._update_confusion(*self._eval_step("test", batch, self.tta_level))
        if self.tta_level > 0:  # also report the plain accuracy, so the TTA gain is visible: test_no_tta/acc
            x, y = batch
            self._log_accuracy("test_no_tta", self.logits(x), self._targets(y), len(x), False, prog_bar=False)

    def predict_step(self, batch, batch_idx):
        """Per head, the class probabilities (float32) of a batch of normalised images, with the model's TTA."""
        return {name: logits.float().softmax(1) for name, logits in self._tta_logits(batch, self.tta_level).items()}

    # -- checkpoints: what prediction needs besides the weights ---------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        build_args = getattr(self.backbone, "build_args", None)
        if build_args is not None:
            checkpoint["backbone"] = build_args
        metadata = getattr(self.attached_datamodule(), "checkpoint_metadata", None)
        if metadata is not None:
            checkpoint["data"] = metadata()

    # -- data-dependent init and per-epoch backbone settings --------------------------------------------------------
    def on_fit_start(self):
        data_init = getattr(self.backbone, "data_init", None)
        datamodule = self.attached_datamodule()
        fresh = self.trainer.ckpt_path is None and self.trainer.global_step == 0
        if data_init is not None and fresh and hasattr(datamodule, "init_images"):
            data_init(datamodule.init_images().to(self.device))

    def on_train_epoch_start(self):
        set_epoch = getattr(self.backbone, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.current_epoch)

    # -- optimiser ------------------------------------------------------------------------------------------------
    def parameter_groups(self, weight_decay: float, base_lr: float | None) -> list[dict]:
        """Split trainable parameters into (weights), (normalisation params), (other biases) groups."""
        return parameter_groups(self, weight_decay, base_lr, self.hparams.norm_lr_scale,
                                self.hparams.exclude_norm_and_bias_from_wd)

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("model.optimizer: no optimizer given (set the optimizer config group)")
        keywords = getattr(self.optimizer_factory, "keywords", {})
        return self.optimizer_factory(self.parameter_groups(keywords.get("weight_decay", 0.0), keywords.get("lr")))


def _check_arguments(heads: Mapping[str, int], label_smoothing: float, tta_level: int, norm_lr_scale: float) -> None:
    if not heads:
        raise ValueError("model.heads: at least one head {name: num_classes} is needed")
    for name, n in heads.items():
        if int(n) < 2:
            raise ValueError(f"model.heads.{name}: a head needs >= 2 classes, got {n}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"model.label_smoothing must be in [0, 1), got {label_smoothing}")
    if tta_level not in TTA_LEVELS:
        raise ValueError(f"model.tta_level must be one of {TTA_LEVELS}, got {tta_level!r}")
    if norm_lr_scale <= 0:
        raise ValueError(f"model.norm_lr_scale must be > 0, got {norm_lr_scale}")


def parameter_groups(module: nn.Module, weight_decay: float, base_lr: float | None, norm_lr_scale: float,
                     exclude_norm_and_bias_from_wd: bool) -> list[dict]:
    """Trainable parameters in (weights), (normalisation params), (other biases) groups: normalisation parameters
    get ``lr_scale = norm_lr_scale`` (and their weight decay divided by it), and with
    ``exclude_norm_and_bias_from_wd`` neither they nor the biases are decayed."""
    norm_ids = {id(p) for m in module.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)}
    scale, exclude = norm_lr_scale, exclude_norm_and_bias_from_wd
    groups = {"weights": [], "norm": [], "bias": []}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        kind = "norm" if id(p) in norm_ids else "bias" if name.endswith("bias") else "weights"
        groups[kind].append(p)
    out = []
    for kind, params in groups.items():
        if not params:
            continue
        group = {"params": params, "name": kind}
        if kind != "weights" and exclude:
            group["weight_decay"] = 0.0
        if kind == "norm" and scale != 1.0:
            group["lr_scale"] = scale
            group["weight_decay"] = group.get("weight_decay", weight_decay) / scale
            if base_lr is not None:
                group["lr"] = base_lr * scale
        out.append(group)
    return out
