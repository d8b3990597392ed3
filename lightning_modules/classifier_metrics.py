"""What :class:`~lightning_modules.classifier.Classifier` measures and logs, per head: accuracy (and macro F1) per
split, the loss, the mean accuracy over heads, and each head's confusion matrix (validation: at the end of fit;
validation or test: :meth:`ClassifierMetrics.log_confusion_matrices`)."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from datamodules.tensor_images import UNKNOWN_LABEL
from lightning_modules.confusion import log_confusion_matrix

IGNORE_INDEX = UNKNOWN_LABEL  # a target the loss and metrics skip: the datamodules' unknown class (PyTorch's -100)


class ClassifierMetrics:
    """Metric modules and logging of the Classifier (a mixin before ``pl.LightningModule``: it uses the module's
    ``log``, ``trainer`` and ``attached_datamodule`` and the classifier's ``head_names``, ``logits`` and ``_targets``).

    Names (:meth:`metric_names`): ``{split}/loss``; with one head ``{split}/acc`` (and ``val``/``test``
    ``f1_macro``); with several, ``{split}/<head>/acc``, ``{split}/<head>/f1_macro`` and ``{split}/acc_mean``, the
    mean accuracy over heads, also logged as ``{split}/acc``: ``val/acc`` is the accuracy with any number of heads."""

    head_names: list[str]

    @torch.no_grad()
    def accuracy_counts(self, batch) -> tuple[torch.Tensor, float]:
        """Correct predictions and predictions (labelled images), each averaged over heads: their ratio is the
        accuracy over every head's predictions, their count about the images. The accuracy test reads its binomial
        standard error off that count: summed over heads, two heads counted 120 validation images as 240."""
        x, y = batch
        logits, targets = self.logits(x), self._targets(y)
        correct = sum((logits[n].argmax(1) == targets[n]).sum() for n in self.head_names)
        labelled = sum(int((targets[n] != IGNORE_INDEX).sum()) for n in self.head_names)
        return correct / len(self.head_names), labelled / len(self.head_names)

    def make_metrics(self, heads: Mapping[str, int]) -> None:
        """The metric modules of every head (call once the module's ``__init__`` has run ``super().__init__``)."""
        self.metrics = nn.ModuleDict({
            f"{split}_{name}": MulticlassAccuracy(int(n), average="micro", ignore_index=IGNORE_INDEX)
            for split in ("val", "test", "test_no_tta") for name, n in heads.items()
        })
        self.f1 = nn.ModuleDict({
            f"{split}_{name}": MulticlassF1Score(int(n), average="macro", ignore_index=IGNORE_INDEX)
            for split in ("val", "test") for name, n in heads.items()
        })
        self.confusion = nn.ModuleDict({name: MulticlassConfusionMatrix(int(n), ignore_index=IGNORE_INDEX)
                                        for name, n in heads.items()})

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
            known = targets[name] != IGNORE_INDEX
            correct = (logits[name].detach().argmax(1) == targets[name]) & known
            self.log(self._key("train", name, "acc"), correct.sum() / known.sum().clamp_min(1), on_step=True,
                     on_epoch=False, batch_size=batch_size)

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

    def metric_names(self, split: str) -> list[str]:
        """What this module logs for ``split`` (``train``, ``val``, ``test``, or ``test_no_tta``: the accuracy
        without test-time augmentation, logged when it is on): the names ``monitor`` may take."""
        if split == "test_no_tta":
            return [self._key(split, h, "acc") for h in self.head_names] if getattr(self, "tta_level", 0) else []
        per_head = ["acc"] + (["f1_macro"] if split != "train" else [])
        names = [f"{split}/loss"] + [self._key(split, h, m) for h in self.head_names for m in per_head]
        several = len(self.head_names) > 1 and split != "train"
        return names + ([f"{split}/acc_mean", f"{split}/acc"] if several else [])

    def _key(self, split: str, head: str, metric: str) -> str:
        return f"{split}/{metric}" if len(self.head_names) == 1 else f"{split}/{head}/{metric}"

    def _log_mean_accuracy(self, split: str):
        if len(self.head_names) > 1:
            mean = torch.stack([self.metrics[f"{split}_{n}"].compute() for n in self.head_names]).mean()
            # the per-head metrics' compute() already synced their states over DDP ranks: every rank holds the same
            # mean, so sync_dist (a mean of equal values) changes nothing but stops Lightning's warning asking for it
            self.log(f"{split}/acc_mean", mean, prog_bar=True, sync_dist=True)
            self.log(f"{split}/acc", mean, sync_dist=True)

    def _reset_confusion(self):
        for cm in self.confusion.values():
            cm.reset()

    def on_validation_epoch_start(self):
        self._reset_confusion()

    def on_test_epoch_start(self):
        self._reset_confusion()

    def on_validation_epoch_end(self):
        self._log_mean_accuracy("val")

    def on_test_epoch_end(self):
        self._log_mean_accuracy("test")

    def on_fit_end(self):
        self.log_confusion_matrices("val")

    def log_confusion_matrices(self, split: str) -> None:
        """The last validation's (``val``) or test's (``test``) confusion matrix per head, class names on the axes,
        to TensorBoard and the run folder. Call it on every rank: compute() syncs under DDP."""
        vocabularies = getattr(self.attached_datamodule(), "vocabularies", None) or {}
        for name in self.head_names:
            if self.confusion[name].update_count:
                matrix = self.confusion[name].compute().cpu()
                if self.trainer.is_global_zero:
                    log_confusion_matrix(self.trainer, name, matrix, vocabularies.get(name), split)
