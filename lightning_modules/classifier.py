"""One image classifier: a backbone and one or more classification heads (one per attribute)."""
from __future__ import annotations

from typing import Callable, Mapping

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from lightning_modules.confusion import log_confusion_matrix
from lightning_modules.networks import count_parameters

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
TTA_LEVELS = (0, 1, 2)


def tta_views(x: torch.Tensor, level: int) -> list[tuple[float, torch.Tensor]]:
    """Weighted views whose logits are averaged: level 1 is the image and its mirror; level 2 is airbench's
    flip + translate TTA (half weight on the flip pair, half on flip pairs of two 1-pixel diagonal shifts)."""
    views = [(0.5, x), (0.5, x.flip(3))]
    if level == 1:
        return views
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, :-2, :-2], padded[:, :, 2:, 2:]]
    return [(w / 2, v) for w, v in views] + [(0.125, v) for s in shifted for v in (s, s.flip(3))]


class Classifier(pl.LightningModule):
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

    Metrics: ``{split}/loss``; with one head ``{split}/acc`` (and ``val``/``test`` ``f1_macro``); with several,
    ``{split}/<head>/acc``, ``{split}/<head>/f1_macro`` and ``{split}/acc_mean`` (also logged as ``{split}/acc``).
    At the end of fit each head's validation confusion matrix goes to TensorBoard and the run folder.
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, int], optimizer: Callable | None = None,
                 label_smoothing: float = 0.0, tta_level: int = 0, tta_on_val: bool = False,
                 exclude_norm_and_bias_from_wd: bool = False, norm_lr_scale: float = 1.0,
                 channels_last: bool = False, compile: bool = False, loss_weights: Mapping[str, float] | None = None,
                 class_weights: Mapping[str, object] | str | None = None):
        super().__init__()
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
        heads = {str(name): int(n) for name, n in heads.items()}  # plain types: checkpoints load with weights_only
        loss_weights = _check_loss_weights(loss_weights, heads)
        class_weights = _check_class_weights(class_weights, heads)
        self.save_hyperparameters(ignore=["backbone", "optimizer"], logger=False)
        self.backbone = backbone
        self.head_names = list(heads)
        self.heads = nn.ModuleDict({name: backbone.make_head(int(n)) for name, n in heads.items()})
        self.optimizer_factory = optimizer
        self.label_smoothing, self.tta_level, self.tta_on_val = label_smoothing, tta_level, tta_on_val
        self.channels_last, self.compile = channels_last, compile
        self.metrics = nn.ModuleDict({
            f"{split}_{name}": MulticlassAccuracy(int(n), average="micro")
            for split in ("val", "test", "test_no_tta") for name, n in heads.items()
        })
        self.f1 = nn.ModuleDict({f"{split}_{name}": MulticlassF1Score(int(n), average="macro")
                                 for split in ("val", "test") for name, n in heads.items()})
        self.confusion = nn.ModuleDict({name: MulticlassConfusionMatrix(int(n)) for name, n in heads.items()})
        self.loss_weights = loss_weights
        self.class_weights: dict[str, torch.Tensor] = {}  # resolved in setup ("balanced" needs the data)
        self._compiled_backbone = None

    # -- model ----------------------------------------------------------------------------------------------------
    def num_parameters(self) -> int:
        return count_parameters(self)

    def setup(self, stage: str) -> None:
        self.class_weights = self._resolve_class_weights()
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
        if level == 0:
            return self.logits(x)
        out = {}
        for weight, view in tta_views(x, level):
            for name, logits in self.logits(view).items():
                out[name] = out.get(name, 0) + weight * logits.float()
        return out

    def loss_from_logits(self, logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]):
        """Weighted sum over heads of the mean cross-entropy (with label smoothing and class weights)."""
        total = 0
        for n in self.head_names:
            weight = self.class_weights.get(n)
            weight = None if weight is None else weight.to(logits[n].device)
            ce = F.cross_entropy(logits[n].float(), targets[n], weight=weight, label_smoothing=self.label_smoothing)
            total = total + self.loss_weights.get(n, 1.0) * ce
        return total

    def _resolve_class_weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, spec in self.hparams.class_weights.items():
            if spec == "balanced":
                counts = getattr(getattr(self._trainer, "datamodule", None), "class_counts", {}).get(name)
                if counts is None:
                    raise ValueError(f"model.class_weights.{name}=balanced needs the training class counts, which "
                                     "this datamodule does not provide; give a list of weights instead")
                counts = torch.tensor(counts, dtype=torch.float32)
                out[name] = counts.sum() / (len(counts) * counts.clamp_min(1))
            else:
                out[name] = torch.tensor(spec, dtype=torch.float32)
        return out

    # -- API for callbacks (no logging) ---------------------------------------------------------------------------
    def compute_loss(self, batch) -> torch.Tensor:
        x, y = batch
        return self.loss_from_logits(self.logits(x), self._targets(y))

    @torch.no_grad()
    def accuracy_counts(self, batch) -> tuple[torch.Tensor, int]:
        """Correct predictions summed over heads, and the number of predictions."""
        x, y = batch
        logits, targets = self.logits(x), self._targets(y)
        correct = sum((logits[n].argmax(1) == targets[n]).sum() for n in self.head_names)
        return correct, len(x) * len(self.head_names)

    # -- steps ----------------------------------------------------------------------------------------------------
    def _log_step(self, split: str, loss, logits, targets, batch_size: int, on_step: bool):
        # training logs per step, evaluation per epoch: one series per name (train/loss, val/acc, ...)
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=split != "test",
                 batch_size=batch_size, sync_dist=not on_step)
        if split == "train":
            self._log_train_accuracy(logits, targets, batch_size)
        else:
            self._log_accuracy(split, logits, targets, batch_size, on_step, prog_bar=True)

    def _log_train_accuracy(self, logits, targets, batch_size: int):
        # the batch's accuracy (micro: correct / predictions) as a tensor, off the progress bar: the logger reads it
        # every log_every_n_steps; on the bar it would be read (a device-to-host sync) after every batch
        for name in self.head_names:
            correct = logits[name].detach().argmax(1) == targets[name]
            self.log(self._key("train", name, "acc"), correct.float().mean(), on_step=True, on_epoch=False,
                     batch_size=batch_size)

    def _log_accuracy(self, split: str, logits, targets, batch_size: int, on_step: bool, prog_bar: bool):
        for name in self.head_names:
            metric = self.metrics[f"{split}_{name}"]
            metric(logits[name].detach(), targets[name])
            self.log(self._key(split, name, "acc"), metric, on_step=on_step, on_epoch=not on_step,
                     prog_bar=prog_bar and len(self.head_names) == 1, batch_size=batch_size)
            if f"{split}_{name}" in self.f1:
                f1 = self.f1[f"{split}_{name}"]
                f1(logits[name].detach(), targets[name])
                self.log(self._key(split, name, "f1_macro"), f1, on_step=False, on_epoch=True, batch_size=batch_size)

    def _key(self, split: str, head: str, metric: str) -> str:
        return f"{split}/{metric}" if len(self.head_names) == 1 else f"{split}/{head}/{metric}"

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

    def validation_step(self, batch, batch_idx):
        logits, targets = self._eval_step("val", batch, self.tta_level if self.tta_on_val else 0)
        for name in self.head_names:
            self.confusion[name].update(logits[name].detach().argmax(1), targets[name])

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch, self.tta_level)
        if self.tta_level > 0:  # also report the plain accuracy, so the TTA gain is visible: test_no_tta/acc
            x, y = batch
            self._log_accuracy("test_no_tta", self.logits(x), self._targets(y), len(x), False, prog_bar=False)

    def _log_mean_accuracy(self, split: str):
        if len(self.head_names) > 1:
            accs = [self.metrics[f"{split}_{n}"].compute() for n in self.head_names]
            mean = torch.stack(accs).mean()
            self.log(f"{split}/acc_mean", mean, prog_bar=True)
            self.log(f"{split}/acc", mean)

    def on_validation_epoch_start(self):
        for cm in self.confusion.values():
            cm.reset()

    def on_validation_epoch_end(self):
        self._log_mean_accuracy("val")

    def on_test_epoch_end(self):
        self._log_mean_accuracy("test")

    def on_fit_end(self):
        """The last validation's confusion matrix per head (class names on the axes) to TensorBoard and the run
        folder."""
        vocabularies = getattr(self.trainer.datamodule, "vocabularies", None) or {}
        for name in self.head_names:
            if self.confusion[name].update_count:
                matrix = self.confusion[name].compute().cpu()  # on every rank: compute() syncs under DDP
                if self.trainer.is_global_zero:
                    log_confusion_matrix(self.trainer, name, matrix, vocabularies.get(name))

    # -- checkpoints: what prediction needs besides the weights ---------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        build_args = getattr(self.backbone, "build_args", None)
        if build_args is not None:
            checkpoint["backbone"] = build_args
        metadata = getattr(getattr(self._trainer, "datamodule", None), "checkpoint_metadata", None)
        if metadata is not None:
            checkpoint["data"] = metadata()

    # -- data-dependent init and per-epoch backbone settings --------------------------------------------------------
    def on_fit_start(self):
        data_init = getattr(self.backbone, "data_init", None)
        datamodule = getattr(self.trainer, "datamodule", None)
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
        norm_ids = {id(p) for m in self.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)}
        scale = self.hparams.norm_lr_scale
        exclude = self.hparams.exclude_norm_and_bias_from_wd
        groups = {"weights": [], "norm": [], "bias": []}
        for name, p in self.named_parameters():
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

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("model.optimizer: no optimizer given (set the optimizer config group)")
        keywords = getattr(self.optimizer_factory, "keywords", {})
        return self.optimizer_factory(self.parameter_groups(keywords.get("weight_decay", 0.0), keywords.get("lr")))


def _check_loss_weights(weights, heads: Mapping[str, int]) -> dict[str, float]:
    weights = {str(k): float(v) for k, v in (weights or {}).items()}
    unknown = sorted(set(weights) - set(heads))
    if unknown or any(w < 0 for w in weights.values()):
        raise ValueError(f"model.loss_weights: keys must be heads {sorted(heads)} and weights >= 0, got {weights}")
    return weights


def _check_class_weights(weights, heads: Mapping[str, int]) -> dict[str, object]:
    if weights is None:
        return {}
    if isinstance(weights, str):
        weights = {name: weights for name in heads}
    out = {}
    for name, spec in weights.items():
        if name not in heads:
            raise ValueError(f"model.class_weights: {name!r} is not a head; heads: {sorted(heads)}")
        if spec is None:
            continue
        if isinstance(spec, str):
            if spec != "balanced":
                raise ValueError(f"model.class_weights.{name}: {spec!r} is not allowed; use balanced or a list")
            out[name] = spec
        else:
            values = [float(v) for v in spec]
            if len(values) != heads[name] or any(v < 0 for v in values):
                raise ValueError(f"model.class_weights.{name}: need {heads[name]} weights >= 0, got {values}")
            out[name] = values
    return out
