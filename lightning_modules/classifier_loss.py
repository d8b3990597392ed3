"""The classifier's loss: per head, cross-entropy with label smoothing, per-class weights and unknown labels
skipped, summed over heads with their loss weights; and the loss a model that learned nothing scores on it (the
max_lr trials' chance level). A mixin of :class:`~lightning_modules.classifier.Classifier`, like
:class:`~lightning_modules.classifier_metrics.ClassifierMetrics`."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from lightning_modules.classifier_metrics import IGNORE_INDEX

__all__ = ["ClassifierLoss", "resolve_class_weights", "check_loss_weights", "check_class_weights"]


class ClassifierLoss:
    """The loss of the Classifier (a mixin before ``pl.LightningModule``: it uses the classifier's ``head_names``,
    ``class_weights``, ``loss_weights``, ``label_smoothing``, ``hparams.heads``, ``attached_datamodule``, ``logits`` and
    ``_targets``)."""

    head_names: list[str]
    class_weights: dict[str, torch.Tensor]
    loss_weights: dict[str, float]
    label_smoothing: float

    def loss_from_logits(self, logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]):
        """Weighted sum over heads of the mean cross-entropy (with label smoothing and class weights) over the images
        whose class the head knows (targets ``IGNORE_INDEX`` skipped; a head with none in the batch adds 0)."""
        total = 0
        for n in self.head_names:
            weight = self.class_weights.get(n)
            weight = None if weight is None else weight.to(logits[n].device)
            per_image = F.cross_entropy(logits[n].float(), targets[n], weight=weight, reduction="none",
                                        ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
            known = targets[n] != IGNORE_INDEX
            share = known.float() if weight is None else weight[targets[n].clamp_min(0)] * known
            total = total + self.loss_weights.get(n, 1.0) * per_image.sum() / share.sum().clamp_min(1e-12)
        return total

    def compute_loss(self, batch) -> torch.Tensor:
        """The loss of one ``(images, labels)`` batch, without logging (the range test's API)."""
        x, y = batch
        return self.loss_from_logits(self.logits(x), self._targets(y))

    @torch.no_grad()
    def chance_loss(self) -> float:
        """The training loss of a constant prediction, what a model that learned nothing from its inputs reaches:
        per head, the smoothed, class-weighted frequencies of the training labels (``datamodule.class_counts``;
        uniform without them) as the prediction, scored by this module's own loss on those labels. The max_lr
        trials count a trial as learned only when it ends below it (:mod:`callbacks.range_test.trials`)."""
        counts = getattr(self.attached_datamodule(), "class_counts", None) or {}
        logits, targets = {}, {}
        for name in self.head_names:
            k = self.hparams.heads[name]
            per_class = torch.as_tensor(counts.get(name) or [1] * k, dtype=torch.long)
            per_class = torch.ceil(per_class * min(1.0, 10_000 / max(int(per_class.sum()), 1))).long()  # bounded
            weight = self.class_weights.get(name, torch.ones(k)).double().cpu()
            freq = per_class.double() * weight
            prediction = (1 - self.label_smoothing) * freq / freq.sum() + self.label_smoothing / k
            targets[name] = torch.repeat_interleave(torch.arange(k), per_class)
            logits[name] = prediction.clamp_min(1e-12).log().float().expand(len(targets[name]), k)
        return float(self.loss_from_logits(logits, targets))


def resolve_class_weights(specs: Mapping[str, object], datamodule) -> dict[str, torch.Tensor]:
    """Per-class cross-entropy weights per head from the checked ``class_weights`` specs: a list as given,
    ``balanced`` as n / (k x n_class) from ``datamodule.class_counts`` (the training split's)."""
    out = {}
    for name, spec in specs.items():
        if spec == "balanced":
            counts = getattr(datamodule, "class_counts", {}).get(name)
            if counts is None:
                raise ValueError(f"model.class_weights.{name}=balanced needs the training class counts, which "
                                 "this datamodule does not provide; give a list of weights instead")
            counts = torch.tensor(counts, dtype=torch.float32)
            out[name] = counts.sum() / (len(counts) * counts.clamp_min(1))
        else:
            out[name] = torch.tensor(spec, dtype=torch.float32)
    return out


def check_loss_weights(weights, heads: Mapping[str, int]) -> dict[str, float]:
    weights = {str(k): float(v) for k, v in (weights or {}).items()}
    unknown = sorted(set(weights) - set(heads))
    if unknown or any(w < 0 for w in weights.values()):
        raise ValueError(f"model.loss_weights: keys must be heads {sorted(heads)} and weights >= 0, got {weights}")
    return weights


def check_class_weights(weights, heads: Mapping[str, int]) -> dict[str, object]:
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
